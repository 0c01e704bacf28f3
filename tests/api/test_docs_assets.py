import re

# The page also carries random tokens (CSRF), which may spell "cdn" by chance: look at the asset URLs only.
ASSET_URL = re.compile(r"""(?:src|href)\s*[=:]\s*["']([^"']+)["']""", re.IGNORECASE)


def test_docs_page_uses_local_assets(client, operator):
    client.force_login(operator)
    r = client.get("/api/docs/")
    body = r.content.decode()
    assert r.status_code == 200
    urls = ASSET_URL.findall(body)
    assert urls
    assert not [url for url in urls if "cdn" in url.lower() or url.startswith(("http://", "https://", "//"))]
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in body
