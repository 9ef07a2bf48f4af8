-- GET /healthz: the framework's own cost per request, the floor of every route.
request = function() return wrk.format("GET", "/healthz") end
