-- POST /v1/sessions: a new lease and its signed token per request. KEY, PRODUCT from env.
-- Each request has its own fingerprint (wrk's math.random is unseeded and the same in
-- every thread, so random ones would repeat and turn acquires into renewals).
local run = tostring(os.time()) .. "-" .. tostring(os.clock()):gsub("%.", "")
local threads = 0
setup = function(thread) thread:set("tid", threads); threads = threads + 1 end
local n = 0
local headers = {["Authorization"] = "Bearer " .. os.getenv("KEY"), ["Content-Type"] = "application/json"}
local product = os.getenv("PRODUCT") or "kre"
request = function()
  n = n + 1
  local body = string.format('{"product":"%s","fingerprint":"acq-%s-%s-%d"}', product, run, tid or 0, n)
  return wrk.format("POST", "/v1/sessions", headers, body)
end
