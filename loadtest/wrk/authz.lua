-- GET /v1/orgs/{ORG}/authz/check: one member asks about themselves in one project.
-- KEY, ORG, USER_ID, PROJECT from env.
local q = string.format("/v1/orgs/%s/authz/check?user=%s&project=%s&permission=executions.read",
  os.getenv("ORG"), os.getenv("USER_ID"), os.getenv("PROJECT"))
local headers = {["Authorization"] = "Bearer " .. os.getenv("KEY")}
request = function()
  return wrk.format("GET", q, headers)
end
