"""A Google Cloud Storage stand-in that TensorFlow's own gs:// filesystem reads, offline.

TensorFlow's GCS client has its endpoints (https://www.googleapis.com, https://storage.googleapis.com)
compiled in and reads no emulator variable. Its libcurl does honour `https_proxy` and `CURL_CA_BUNDLE`,
so `GcsEmulator` starts gcp-storage-emulator (PyPI) in a subprocess and a CONNECT proxy in this process
that terminates TLS for those hosts with a self-signed certificate and relays the requests, decrypted,
to the emulator. `environment()` is what a TensorBoard process needs to use it. Files are put in with the
emulator's own upload API (TensorFlow's resumable uploads reach this emulator with their chunk framing
stored in the object, so writing through tf.io.gfile is not tested here).
"""

import http.client
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

from tests.conftest import free_port


class GcsEmulator:
    """gcp-storage-emulator with bucket `bucket`, reachable as gs://<bucket> through a TLS-terminating CONNECT proxy."""

    def __init__(self, certificate, bucket="logs", log_path=os.devnull):
        self.certificate, self.bucket = certificate, bucket
        self.port = free_port()
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(self.port),
             "--in-memory", "--default-bucket", bucket],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._wait()
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(*certificate)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.proxy_port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def environment(self):
        """Environment variables under which TensorFlow's gs:// reaches this emulator."""
        proxy = "http://127.0.0.1:%d" % self.proxy_port
        return {"https_proxy": proxy, "http_proxy": proxy, "no_proxy": "127.0.0.1,localhost", "CURL_CA_BUNDLE": self.certificate[0],
                "GOOGLE_AUTH_TOKEN_FOR_TESTING": "offline", "NO_GCE_CHECK": "true"}  # fmt: skip

    def put(self, name, data):
        """Store `data` as object `name` (one media upload straight to the emulator)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        query = urllib.parse.urlencode({"uploadType": "media", "name": name})
        connection.request("POST", "/upload/storage/v1/b/%s/o?%s" % (self.bucket, query), body=data,
                           headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))})  # fmt: skip
        response = connection.getresponse()
        response.read()
        connection.close()
        assert response.status == 200, (name, response.status)

    def put_tree(self, folder, prefix):
        """Upload every file under local `folder` as `<prefix>/<relative path>`; the gs:// URL of the prefix."""
        for root, _, names in os.walk(folder):
            for name in names:
                relative = os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/")
                with open(os.path.join(root, name), "rb") as f:
                    self.put(prefix + "/" + relative, f.read())
        return "gs://%s/%s" % (self.bucket, prefix)

    def close(self):
        """Stop the proxy and the emulator."""
        self.listener.close()
        self.process.terminate()
        self.process.wait(timeout=20)
        self.log.close()

    def _wait(self, timeout=60):
        """Block until the emulator answers its health check."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("gcp-storage-emulator did not start")

    def _accept(self):
        """Serve CONNECT (and plain absolute-URI) requests until the listener closes."""
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client):
        """One proxied connection: TLS terminated here, bytes relayed to the emulator."""
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            line, rest = head.split(b"\r\n", 1)
            upstream = socket.create_connection(("127.0.0.1", self.port))
            if line.startswith(b"CONNECT "):
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                client = self.tls.wrap_socket(client, server_side=True)
            else:  # a plain http:// URL (the emulator's resumable-upload Location): path only
                method, url, version = line.split(b" ")
                upstream.sendall(b"%s /%s %s\r\n%s" % (method, url.split(b"/", 3)[3], version, rest))
            threading.Thread(target=_relay, args=(upstream, client), daemon=True).start()
            _relay(client, upstream)
        except (OSError, ssl.SSLError, ValueError):
            client.close()


def _relay(source, sink):
    """Copy bytes from `source` to `sink` until `source` ends, then close `sink` for writing."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass
