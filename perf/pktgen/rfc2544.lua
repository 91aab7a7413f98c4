-- RFC 2544 throughput, NDR (0 % loss) and PDR (0.5 % loss), per frame size and flow
-- preset, with the measured TX/RX counts of each trial (never the rate setting).
--   pktgen -l 0-2 -n 4 -a PCI -- -P -m "[1:2].0" -f perf/pktgen/rfc2544.lua
-- Environment: DRLB_FLOWS=1k (preset; default all), DRLB_SIZES=64,512 (default all),
-- DRLB_QUICK=1 (short trials). Results are appended to conf.results as CSV:
-- size,flows,target,rate_pct,offered_pps,rx_pps,loss_ratio,trial_s,rep
local C = dofile((os.getenv("DRLB_PKTGEN_DIR") or "perf/pktgen") .. "/common.lua")
local conf = C.conf
local version = C.require_api()
pktgen.screen("off")

local quick = os.getenv("DRLB_QUICK") == "1"
local search_s = quick and 2 or conf.search_trial_s
local final_s = quick and 5 or conf.trial_s
local function list(env, default)
  local v = os.getenv(env)
  if not v then return default end
  local t = {}
  for x in v:gmatch("[^,]+") do t[#t + 1] = tonumber(x) or x end
  return t
end
local sizes = list("DRLB_SIZES", conf.sizes)
local presets = list("DRLB_FLOWS", { "1", "1k", "64k", "1M" })
local header = "size,flows,target,rate_pct,offered_pps,rx_pps,loss_ratio,trial_s,rep"

-- Binary search on the rate setting for the highest rate whose measured loss is within
-- `tolerance`; returns that rate (percent).
local function search(tolerance)
  local lo, hi, best = 0, 100, 0
  local rate = 100
  for _ = 1, conf.iterations do
    local _, _, loss = C.trial(rate, search_s)
    if loss <= tolerance then
      best, lo = rate, rate
    else
      hi = rate
    end
    if hi - lo < 0.5 then break end
    rate = (lo + hi) / 2
  end
  return best
end

print(string.format("drlb RFC 2544 with Pktgen %s: sizes %s, presets %s", version,
  table.concat(sizes, ","), table.concat(presets, ",")))
for _, preset in ipairs(presets) do
  for _, size in ipairs(sizes) do
    C.setup(preset, size)
    C.trial(1, 1) -- warm-up: ARP, flow tables, caches
    for name, tol in pairs(conf.loss) do
      local rate = search(tol)
      local rx = {}
      for rep = 1, conf.repeats do
        local offered, got, loss = C.trial(rate, final_s)
        rx[#rx + 1] = got
        C.append_csv(conf.results, header, string.format("%d,%s,%s,%.2f,%.0f,%.0f,%.6f,%d,%d",
          size, preset, name, rate, offered, got, loss, final_s, rep))
      end
      print(string.format("%5d B %4s flows %s: %.3f Mpps (median of %d, rate %.1f %%)",
        size, preset, name, C.median(rx) / 1e6, conf.repeats, rate))
    end
  end
end
pktgen.quit()
