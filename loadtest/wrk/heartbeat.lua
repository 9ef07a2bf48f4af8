-- POST /v1/sessions/{SESSION}/heartbeat on one live lease: a new expiry and token each time.
local headers = {["Authorization"] = "Bearer " .. os.getenv("KEY")}
local path = "/v1/sessions/" .. os.getenv("SESSION") .. "/heartbeat"
request = function() return wrk.format("POST", path, headers) end
