-- wrk script: POST /v1/check for the example config's demo key.
wrk.method = "POST"
wrk.path = "/v1/check"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"api_key":"demo-key-123","route":"POST /v1/predict"}'
