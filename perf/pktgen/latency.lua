-- Latency at 10, 50 and 90 % of a given PDR rate, with Pktgen's latency probes and the
-- latency sampler (raw per-probe latencies in ns, one per line) for percentiles.
--   DRLB_PDR_PCT=73.5 pktgen ... -- -P -m "[1:2].0" -f perf/pktgen/latency.lua
--   python3 perf/pktgen/percentiles.py drlb-lat-*.txt
-- The probes cross the generator and the wire too: subtract a loopback run (cable
-- from port 0 to port 1, no director) to see what the director adds.
local C = dofile((os.getenv("DRLB_PKTGEN_DIR") or "perf/pktgen") .. "/common.lua")
local conf = C.conf
C.require_api()
pktgen.screen("off")
local pdr = tonumber(os.getenv("DRLB_PDR_PCT") or "")
assert(pdr, "set DRLB_PDR_PCT to the PDR rate (percent) found by rfc2544.lua")
local preset = os.getenv("DRLB_FLOWS") or "1k"
local secs = tonumber(os.getenv("DRLB_SECS") or "30")
C.setup(preset, 64)
local p = conf.tx_port
for _, load in ipairs({ 10, 50, 90 }) do
  local file = string.format("drlb-lat-%s-%d.txt", preset, load)
  pktgen.latency(p, "enable")
  pktgen.latency(p, "rate", 100) -- a probe every 100 us
  pktgen.latsampler_params(p, "poisson", 20000, 1000, file)
  pktgen.latsampler(p, "on")
  local offered, rx, loss = C.trial(pdr * load / 100, secs)
  pktgen.latsampler(p, "off")
  pktgen.latency(p, "disable")
  print(string.format("load %d %% of PDR: offered %.0f pps, received %.0f pps, loss %.4f %%, samples in %s",
    load, offered, rx, loss * 100, file))
end
pktgen.quit()
