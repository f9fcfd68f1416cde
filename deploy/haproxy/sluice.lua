-- Sluice as forward auth for HAProxy 2.6+ (Lua, core.httpclient).
--
-- Loaded by haproxy.cfg (lua-load) and used there as
--
--   http-request  lua.sluice_auth <address of the sluice_gate frontend> <closed|open>
--   http-response lua.sluice_fields
--
-- The sub-request goes through haproxy.cfg's sluice_gate frontend to its sluice backend, so
-- that HAProxy's own timeouts, retries and connection reuse apply to it (HAProxy 2.6's
-- httpclient has no connect timeout of its own and retries a refused connection for seconds).
--
-- sluice_auth asks Sluice about the request before it reaches a backend. The sub-request
-- carries only what this gateway vouches for: the API key headers the client sent, the
-- method and URI HAProxy parsed (X-Original-Method / X-Original-URI: Sluice's
-- route_from: original, the default), and X-Sluice-Deny-Status: 403, so that every answer
-- names the status Sluice means in X-Sluice-Status. The client's own route and cost headers
-- are never sent. Then:
--   Sluice allows (204)            the request goes on; sluice_fields copies the decision's
--                                  rate-limit fields onto the backend's response
--   Sluice answers anything else   the client gets that answer: Sluice's status (429, 401,
--                                  403, 400, 503...), body and rate-limit fields
--   Sluice cannot answer           the fail mode: closed = 503, open = the request goes on
--                                  (down, timed out, or an answer without X-Sluice-Status)

-- Request headers passed on to Sluice as the client sent them: the API key. Keep this in
-- step with Sluice's server.api_key_header.
local KEY_HEADERS = { "x-api-key", "authorization" }

-- Fields of Sluice's answer passed on to the client.
local DECISION_FIELDS = {
    "ratelimit", "ratelimit-policy", "retry-after",
    "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
    "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
}
local DENIAL_FIELDS = { "content-type", "www-authenticate" }

-- The first value of a header in a table of name -> list of values. HAProxy's own
-- tables index values from 0 (req_get_headers), the httpclient's from 1.
local function first(headers, name)
    local values = headers and headers[name]
    if values == nil then return nil end
    return values[0] or values[1]
end

local function copy_fields(from, names, to)
    for _, name in ipairs(names) do
        local value = first(from, name)
        if value ~= nil and value ~= "" then
            to[name] = { value }
        end
    end
end

local function unavailable(txn, fail_mode)
    if fail_mode == "open" then
        return
    end
    txn:done{
        status = 503,
        headers = { ["content-type"] = { "application/json" } },
        body = '{"error":{"code":"rate_limiter_unavailable","message":"try again later"}}\n',
    }
end

core.register_action("sluice_auth", { "http-req" }, function(txn, gate, fail_mode)
    local client = txn.http:req_get_headers()
    local headers = {
        ["x-original-method"] = { txn.sf:method() },
        ["x-original-uri"] = { txn.sf:pathq() },
        ["x-sluice-deny-status"] = { "403" },
        -- When Sluice requires gateway tokens (server.client_tokens_sha256), send this
        -- gateway's: ["x-sluice-token"] = { "the-gateway-token" },
        -- To charge a cost this gateway assigns: ["x-ratelimit-cost"] = { "..." },
        -- The API stage this site serves, for plans that list stages:
        -- ["x-sluice-stage"] = { "mlApi/prod" },
    }
    for _, name in ipairs(KEY_HEADERS) do
        local value = first(client, name)
        if value ~= nil then
            headers[name] = { value }
        end
    end

    local ok, answer = pcall(function()
        return core.httpclient():get{ url = "http://sluice/v1/auth", dst = gate, headers = headers }
    end)
    local meant = ok and answer and tonumber(first(answer.headers, "x-sluice-status") or "")
    if not meant then
        return unavailable(txn, fail_mode)
    end
    txn:set_var("txn.sluice_status", meant)

    if meant >= 200 and meant < 300 then
        local fields = {}
        copy_fields(answer.headers, DECISION_FIELDS, fields)
        txn:set_priv(fields)
        return
    end
    local reply = {}
    copy_fields(answer.headers, DECISION_FIELDS, reply)
    copy_fields(answer.headers, DENIAL_FIELDS, reply)
    txn:done{ status = meant, headers = reply, body = answer.body or "" }
end, 2)

core.register_action("sluice_fields", { "http-res" }, function(txn)
    local fields = txn:get_priv()
    if type(fields) ~= "table" then
        return
    end
    for name, values in pairs(fields) do
        txn.http:res_set_header(name, values[1])
    end
end, 0)
