-- Acquire, then release: each connection's next request releases the oldest lease its
-- thread holds, so half the requests are POST /v1/sessions, half DELETE, and no seat stays
-- taken. KEY, PRODUCT from env.
local run = tostring(os.time()) .. "-" .. tostring(os.clock()):gsub("%.", "")
local threads = 0
setup = function(thread) thread:set("tid", threads); threads = threads + 1 end
local n = 0
local headers = {["Authorization"] = "Bearer " .. os.getenv("KEY"), ["Content-Type"] = "application/json"}
local product = os.getenv("PRODUCT") or "kre"
local held, first, last = {}, 1, 0
request = function()
  if first <= last then
    local id = held[first]; held[first] = nil; first = first + 1
    return wrk.format("DELETE", "/v1/sessions/" .. id, headers)
  end
  n = n + 1
  local body = string.format('{"product":"%s","fingerprint":"cyc-%s-%s-%d"}', product, run, tid or 0, n)
  return wrk.format("POST", "/v1/sessions", headers, body)
end
response = function(status, _, body)
  if status == 201 then
    local id = body:match('"session_id"%s*:%s*"([^"]+)"')
    if id then last = last + 1; held[last] = id end
  end
end
