"""The benchmark's echo handler on asyncio streams (one process, one event loop).

    python benchmarks/peers/asyncio_echo.py PORT

``asyncio.start_server`` on 127.0.0.1:PORT with the kernel's maximum
backlog; each connection reads a line, writes it back, awaits ``drain()``,
and closes on EOF.  The standard event loop (no uvloop).
"""

import asyncio
import socket
import sys


async def echo(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(line)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve(port):
    server = await asyncio.start_server(echo, "127.0.0.1", port, backlog=socket.SOMAXCONN)
    async with server:
        await server.serve_forever()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    asyncio.run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
