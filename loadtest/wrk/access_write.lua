-- PUT /v1/orgs/{ORG}/projects/{PROJECT}/access: a writer to the same org as the authz
-- readers, flipping one member's roles so that every request is a durable change that
-- rebuilds the org's access view. KEY, ORG, PROJECT, MEMBER from env.
local path = string.format("/v1/orgs/%s/projects/%s/access", os.getenv("ORG"), os.getenv("PROJECT"))
local headers = {["Authorization"] = "Bearer " .. os.getenv("KEY"), ["Content-Type"] = "application/json"}
local roles = {'["test_executor"]', '["test_manager"]'}
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"user":"%s","roles":%s}', os.getenv("MEMBER"), roles[n % 2 + 1])
  return wrk.format("PUT", path, headers, body)
end
