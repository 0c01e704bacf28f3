def test_docs_page_uses_local_assets(client, operator):
    client.force_login(operator)
    r = client.get("/api/docs/")
    body = r.content.decode()
    assert r.status_code == 200
    assert "cdn" not in body.lower()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in body
