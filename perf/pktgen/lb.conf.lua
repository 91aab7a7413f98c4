-- Parameters shared by every script in perf/pktgen/. Edit these, nothing else.
-- Loaded with dofile() by rfc2544.lua, latency.lua and new-flows.lua.
local conf = {
  -- Pktgen port that sends to the director, and the port that receives what the
  -- director forwards (the same port in the one-armed, direct-cable topology).
  tx_port = "0",
  rx_port = "0",
  -- The director: its port's MAC, the VIP and service port (a UDP service measures the
  -- forwarding path; TCP needs SYN flags, see new-flows.lua).
  lb_mac   = "3c:fd:fe:00:00:01",
  vip      = "203.0.113.10",
  vip_port = 80,
  proto    = "udp",
  -- Client addresses, from the benchmarking range of RFC 2544 (198.18.0.0/15).
  src_ip_min = "198.18.0.1",
  -- Flow presets: source IPs x source ports. Range mode steps every field on every
  -- packet, so the two counts must be coprime for the flows to be their product
  -- (256 IPs with 256 ports would give only 256 distinct flows).
  flows = {
    ["1"]  = { ips = 1,    ports = 1 },      -- 1
    ["1k"] = { ips = 32,   ports = 31 },     -- 992
    ["64k"]= { ips = 256,  ports = 255 },    -- 65,280
    ["1M"] = { ips = 1024, ports = 1023 },   -- 1,047,552
  },
  sizes = { 64, 128, 256, 512, 1024, 1280, 1518 },
  trial_s = 60,          -- final trial length (RFC 2544 asks for >= 60 s)
  search_trial_s = 10,   -- trial length during the search
  loss = { ndr = 0.0, pdr = 0.005 },   -- 0 % and 0.5 % loss (FD.io CSIT's NDR/PDR)
  iterations = 10,       -- binary-search steps per loss target
  repeats = 3,           -- report the median of this many final trials
  results = "drlb-rfc2544.csv",
}
return conf
