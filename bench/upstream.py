"""A fast local upstream for the proxy benchmark: plain asyncio protocol, HTTP/1.1 keep-alive.

    GET /small          a 120-byte text/plain answer at once
    GET /slow           the same after 100 ms
    GET /big?size=N     N bytes of application/octet-stream, streamed in 256 KiB writes

Usage: python bench/upstream.py PORT
"""

from __future__ import annotations

import asyncio
import sys

SMALL = b"x" * 120
BLOCK = b"z" * (256 * 1024)


def _head(status: str, length: int, ctype: bytes = b"text/plain") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: ".encode()
        + ctype
        + f"\r\nContent-Length: {length}\r\nConnection: keep-alive\r\n\r\n".encode()
    )


class Upstream(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""
        self.busy = False
        self.queue: list[bytes] = []
        self.writable = asyncio.Event()
        self.writable.set()

    def pause_writing(self):
        self.writable.clear()

    def resume_writing(self):
        self.writable.set()

    def connection_lost(self, exc):
        self.writable.set()

    def data_received(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if len(self.buffer) < length:  # wait for the whole body (small in this benchmark)
                self.buffer = head + b"\r\n\r\n" + self.buffer
                return
            self.buffer = self.buffer[length:]
            self.queue.append(head.split(b"\r\n", 1)[0].split(b" ")[1])
        if not self.busy and self.queue:
            self.busy = True
            self.task = asyncio.ensure_future(self.serve())

    async def serve(self):
        try:
            while self.queue:
                target = self.queue.pop(0)
                if target.startswith(b"/slow"):
                    await asyncio.sleep(0.1)
                    self.transport.write(_head("200 OK", len(SMALL)) + SMALL)
                elif target.startswith(b"/big"):
                    size = int(target.split(b"size=", 1)[1])
                    self.transport.write(_head("200 OK", size, b"application/octet-stream"))
                    sent = 0
                    while sent < size and not self.transport.is_closing():
                        chunk = BLOCK[: min(len(BLOCK), size - sent)]
                        self.transport.write(chunk)
                        sent += len(chunk)
                        await self.writable.wait()  # flow control: the reader sets the pace
                else:
                    self.transport.write(_head("200 OK", len(SMALL)) + SMALL)
        finally:
            self.busy = False


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
