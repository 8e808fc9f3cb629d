"""The origins a compute POST may come from (tb_xai_plugin/plugin/origins.py), header by header."""

import pytest

from tb_xai_plugin.plugin.origins import is_own_origin, normalize

DIRECT = ("http", "127.0.0.1:6006")


@pytest.mark.parametrize(
    "origin, headers, own",
    [
        ("http://127.0.0.1:6006", {}, True),
        ("http://127.0.0.1:6007", {}, False),
        ("https://127.0.0.1:6006", {}, False),  # TLS terminated in front, nothing reported
        ("https://nb.example", {"X-Forwarded-Host": "nb.example", "X-Forwarded-Proto": "https"}, True),
        ("https://nb.example:443", {"X-Forwarded-Host": "nb.example", "X-Forwarded-Proto": "https"}, True),
        ("https://nb.example:8443", {"X-Forwarded-Host": "nb.example", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "8443"}, True),
        ("https://nb.example", {"X-Forwarded-Host": "nb.example", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "8443"}, False),
        ("https://evil.example", {"X-Forwarded-Host": "nb.example", "X-Forwarded-Proto": "https"}, False),
        ("https://nb.example", {"X-Forwarded-Host": "nb.example, inner.local", "X-Forwarded-Proto": "https, http"}, True),
        ("https://inner.local", {"X-Forwarded-Host": "nb.example, inner.local", "X-Forwarded-Proto": "https, http"}, False),
        ("https://127.0.0.1:6006", {"X-Forwarded-Proto": "https"}, True),  # Host kept, TLS terminated
        ("https://nb.example:8443", {"Forwarded": 'for=10.0.0.1;proto=https;host="nb.example:8443", for=10.0.0.2'}, True),
        ("https://NB.example:8443", {"Forwarded": "proto=HTTPS;host=nb.example:8443"}, True),
        ("null", {"X-Forwarded-Host": "nb.example"}, False),
        ("https://nb.example/path", {"X-Forwarded-Host": "nb.example", "X-Forwarded-Proto": "https"}, False),
        ("http://[::1]:6006", {"X-Forwarded-Host": "[::1]:6006", "X-Forwarded-Port": "9999"}, True),
    ],
)
def test_an_origin_is_own_only_when_the_server_or_its_proxy_names_it(origin, headers, own):
    assert is_own_origin(origin, *DIRECT, headers) is own


def test_normalize_drops_default_ports_and_refuses_non_http():
    assert normalize("HTTPS://A.example:443") == "https://a.example"
    assert normalize("http://a.example:80") == "http://a.example"
    assert normalize("ftp://a.example") is None and normalize("a.example") is None
