"""A small real reverse proxy for the deployment tests: TLS termination, Host rewriting, prefix mapping.

`ReverseProxy(upstream, mount="/proxy/6006/", target="/tb/", tls=(cert, key), report="x-forwarded")`
listens on 127.0.0.1 (a free port) and forwards every request under `mount` to `upstream` + `target` + the
rest of the path, with Host set to the upstream's (as nginx's `proxy_pass` and notebook proxies do) and the
browser's origin reported as `report` says: "x-forwarded" (X-Forwarded-Host / -Proto / -Port), "forwarded"
(RFC 7239) or None (nothing: the case the plugin must refuse). Each request is read whole and answered whole.
"""

import http.client
import http.server
import ssl
import threading

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}


class ReverseProxy:
    """A threaded HTTP(S) reverse proxy in this process; see the module docstring."""

    def __init__(self, upstream_port, mount="/", target="/", tls=None, report="x-forwarded"):
        self.upstream_port, self.mount, self.target, self.report = upstream_port, mount, target, report
        self.scheme = "https" if tls else "http"
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = "%s://127.0.0.1:%d%s" % (self.scheme, self.port, mount.rstrip("/"))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def reported_headers(self, browser_host):
        """The headers that tell the upstream which origin the browser used."""
        if self.report == "x-forwarded":
            host, _, port = browser_host.partition(":")
            return {"X-Forwarded-Host": host, "X-Forwarded-Proto": self.scheme, "X-Forwarded-Port": port or ""}
        if self.report == "forwarded":
            return {"Forwarded": 'for=127.0.0.1;proto=%s;host="%s"' % (self.scheme, browser_host)}
        return {}

    def _handler(self):
        """The request handler class bound to this proxy."""
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def forward(self):
                if not self.path.startswith(proxy.mount) and self.path + "/" != proxy.mount:
                    self.send_error(404)
                    return
                path = proxy.target + self.path[len(proxy.mount) :]
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                headers.update(proxy.reported_headers(self.headers.get("Host", "")))
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=300)
                try:
                    upstream.request(self.command, path, body=body or None, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    self.send_response(response.status, response.reason)
                    for k, v in response.getheaders():
                        if k.lower() not in HOP_BY_HOP:
                            if k.lower() == "location" and v.startswith(proxy.target):
                                v = proxy.mount + v[len(proxy.target) :]
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_POST = do_PUT = do_DELETE = forward

        return Handler
