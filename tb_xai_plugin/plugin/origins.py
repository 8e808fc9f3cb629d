"""Which origins a request may come from: the server's own, and the one a reverse proxy says it serves.

A compute POST is refused unless its `Origin` is one of `own_origins(request)`: `scheme://host` as this
server sees the request, plus the origin that a proxy in front of it reports in `Forwarded` (RFC 7239:
`proto=`, `host=`) or `X-Forwarded-Proto` / `X-Forwarded-Host` / `X-Forwarded-Port`. Only the first
(client-facing) hop of each header counts, because that is the address the browser used.
Forwarded headers are trusted for this comparison only, never for paths or access: a cross-site page
cannot put them on a browser request without a CORS preflight, which the required `X-XAI-Request`
header forces already and TensorBoard never grants (docs/deployment.md).
"""

DEFAULT_PORTS = {"http": "80", "https": "443"}


def normalize(origin):
    """'Scheme://Host[:port]' lower-cased, the scheme's default port dropped; None if it is no http(s) origin."""
    scheme, sep, host = origin.strip().lower().partition("://")
    if not sep or scheme not in DEFAULT_PORTS or not host or "/" in host:
        return None
    if host.endswith(":" + DEFAULT_PORTS[scheme]):
        host = host[: -len(DEFAULT_PORTS[scheme]) - 1]
    return "%s://%s" % (scheme, host)


def first_hop(value):
    """The first comma-separated element of a (possibly repeated) header, stripped; None if empty."""
    first = (value or "").split(",")[0].strip()
    return first or None


def forwarded_pairs(value):
    """{name: value} of the first element of an RFC 7239 Forwarded header (quotes removed)."""
    pairs = {}
    for part in (first_hop(value) or "").split(";"):
        name, sep, text = part.partition("=")
        if sep:
            pairs[name.strip().lower()] = text.strip().strip('"')
    return pairs


def with_port(host, port, scheme):
    """`host` with ':port' appended when it has none and the port is not the scheme's default."""
    if not port or port == DEFAULT_PORTS.get(scheme) or host.endswith("]") or ":" in host.rsplit("]", 1)[-1]:
        return host
    return "%s:%s" % (host, port)


def forwarded_origin(scheme, host, headers):
    """The origin a proxy reports (Forwarded first, then X-Forwarded-*); None when it reports none."""
    pairs = forwarded_pairs(headers.get("Forwarded"))
    proto = pairs.get("proto") or first_hop(headers.get("X-Forwarded-Proto"))
    forwarded_host = pairs.get("host") or first_hop(headers.get("X-Forwarded-Host"))
    if proto is None and forwarded_host is None:
        return None
    proto = (proto or scheme).lower()
    port = first_hop(headers.get("X-Forwarded-Port"))
    return normalize("%s://%s" % (proto, with_port(forwarded_host or host, port, proto)))


def own_origins(scheme, host, headers):
    """The normalized origins this request may come from: the direct one and the proxy's, if reported."""
    found = {normalize("%s://%s" % (scheme, host)), forwarded_origin(scheme, host, headers)}
    return found - {None}


def is_own_origin(origin, scheme, host, headers):
    """Whether the browser's `Origin` header names this server, directly or through its proxy."""
    return normalize(origin) in own_origins(scheme, host, headers) if origin else False
