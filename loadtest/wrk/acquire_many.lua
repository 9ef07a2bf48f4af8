-- POST /v1/sessions spread over many organizations: KEYS names a file of runtime keys,
-- one a line; request n uses key n mod their count, with its own fingerprint.
local run = tostring(os.time()) .. "-" .. tostring(os.clock()):gsub("%.", "")
local threads = 0
setup = function(thread) thread:set("tid", threads); threads = threads + 1 end
local keys = {}
for line in io.lines(os.getenv("KEYS")) do keys[#keys + 1] = line end
local product = os.getenv("PRODUCT") or "kre"
local n = 0
request = function()
  n = n + 1
  local headers = {["Authorization"] = "Bearer " .. keys[(n + (tid or 0)) % #keys + 1],
                   ["Content-Type"] = "application/json"}
  local body = string.format('{"product":"%s","fingerprint":"many-%s-%s-%d"}', product, run, tid or 0, n)
  return wrk.format("POST", "/v1/sessions", headers, body)
end
