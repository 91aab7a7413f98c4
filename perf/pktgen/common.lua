-- Helpers shared by the perf/pktgen scripts (Pktgen 23.x Lua API).
package.path = package.path .. ";./?.lua;perf/pktgen/?.lua"
local M = {}
M.conf = dofile((os.getenv("DRLB_PKTGEN_DIR") or "perf/pktgen") .. "/lb.conf.lua")

function M.require_api()
  assert(pktgen, "run inside Pktgen: pktgen ... -- -f perf/pktgen/<script>.lua")
  local v = (pktgen.info and pktgen.info.Pktgen_Version) or "unknown"
  if not pktgen.portStats then
    error("Pktgen " .. v .. " has no pktgen.portStats: use 23.03-24.x (see README)")
  end
  return v
end

local function ip_add(ip, n)
  local a, b, c, d = ip:match("(%d+)%.(%d+)%.(%d+)%.(%d+)")
  local x = ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d) + n
  return string.format("%d.%d.%d.%d", (x >> 24) & 255, (x >> 16) & 255, (x >> 8) & 255, x & 255)
end

-- Range-mode traffic to the VIP: `preset` from conf.flows, frame `size` bytes.
function M.setup(preset, size)
  local c, p = M.conf, M.conf.tx_port
  local f = assert(c.flows[preset], "unknown flow preset " .. tostring(preset))
  pktgen.set_range(p, "off")
  pktgen.range.dst_mac(p, "start", c.lb_mac)
  pktgen.range.src_ip(p, "start", c.src_ip_min)
  pktgen.range.src_ip(p, "min", c.src_ip_min)
  pktgen.range.src_ip(p, "max", ip_add(c.src_ip_min, f.ips - 1))
  pktgen.range.src_ip(p, "inc", f.ips > 1 and "0.0.0.1" or "0.0.0.0")
  pktgen.range.dst_ip(p, "start", c.vip)
  pktgen.range.dst_ip(p, "min", c.vip)
  pktgen.range.dst_ip(p, "max", c.vip)
  pktgen.range.dst_ip(p, "inc", "0.0.0.0")
  pktgen.range.src_port(p, "start", 1024)
  pktgen.range.src_port(p, "min", 1024)
  pktgen.range.src_port(p, "max", 1024 + f.ports - 1)
  pktgen.range.src_port(p, "inc", f.ports > 1 and 1 or 0)
  pktgen.range.dst_port(p, "start", c.vip_port)
  pktgen.range.dst_port(p, "min", c.vip_port)
  pktgen.range.dst_port(p, "max", c.vip_port)
  pktgen.range.dst_port(p, "inc", 0)
  pktgen.range.ip_proto(p, c.proto)
  pktgen.range.pkt_size(p, "start", size)
  pktgen.range.pkt_size(p, "min", size)
  pktgen.range.pkt_size(p, "max", size)
  pktgen.range.pkt_size(p, "inc", 0)
  pktgen.set_range(p, "on")
end

local function stats(port)
  local s = pktgen.portStats(port, "port")[tonumber(port)]
  return s.opackets, s.ipackets, s.imissed or 0
end

-- One trial at `rate` percent for `secs`: returns offered pps, received pps, loss
-- ratio, all from the measured port counters (never from the rate setting: Pktgen's
-- pacing is approximate).
function M.trial(rate, secs)
  local c = M.conf
  pktgen.set(c.tx_port, "rate", rate)
  pktgen.set(c.tx_port, "count", 0)
  pktgen.clr()
  pktgen.delay(500)
  local tx0 = stats(c.tx_port)
  local _, rx0 = stats(c.rx_port)
  pktgen.start(c.tx_port)
  pktgen.delay(secs * 1000)
  pktgen.stop(c.tx_port)
  pktgen.delay(1500) -- let the director's queues drain
  local tx1 = stats(c.tx_port)
  local _, rx1 = stats(c.rx_port)
  local tx, rx = tx1 - tx0, rx1 - rx0
  local loss = tx > 0 and math.max(0, (tx - rx) / tx) or 1
  return tx / secs, rx / secs, loss
end

function M.median(t)
  table.sort(t)
  local n = #t
  if n % 2 == 1 then return t[(n + 1) // 2] end
  return (t[n // 2] + t[n // 2 + 1]) / 2
end

function M.append_csv(path, header, row)
  local exists = io.open(path, "r")
  if exists then exists:close() end
  local f = assert(io.open(path, "a"))
  if not exists then f:write(header .. "\n") end
  f:write(row .. "\n")
  f:close()
end

return M
