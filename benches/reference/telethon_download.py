"""The reference for `cargo bench --bench media`: Telethon 1.45's download_media on every file
of the fake's first channel, one after another, into a directory. Prints one JSON line: files,
bytes, seconds and CPU seconds (the downloads only), peak RSS, and whether cryptg (Telethon's native AES) was
used."""

import asyncio
import base64
import ipaddress
import json
import os
import resource
import struct
import sys
import time

from telethon import TelegramClient
from telethon.sessions import StringSession

API_ID = 94575
API_HASH = "a3406de8d171bb422bb6ddf3bbd800e2"


def session(info):
    # The fake's keys are pre-shared (it does no key exchange): start on the home DC with its
    # key, as a Telethon session that has been there before does.
    dc = info["home_dc"]
    home = info["dcs"][str(dc)]
    key = bytes.fromhex(home["auth_key"])
    host, port = home["address"].rsplit(":", 1)
    ip = ipaddress.ip_address(host).packed
    data = struct.pack(">B{}sH256s".format(len(ip)), dc, ip, int(port), key)
    return StringSession("1" + base64.urlsafe_b64encode(data).decode("ascii"))


async def main(info, out_dir):
    try:
        import cryptg  # noqa: F401

        native = True
    except ImportError:
        native = False
    client = TelegramClient(session(info), API_ID, API_HASH, receive_updates=False)
    await client.connect()
    if not await client.is_user_authorized():
        await client.send_code_request(info["phone"])
        await client.sign_in(info["phone"], info["code"])
    messages = [
        m async for m in client.iter_messages(info["channels"][0], wait_time=0) if m.media
    ]
    total = 0
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.monotonic()
    for m in messages:
        path = await client.download_media(m, file=out_dir)
        total += os.path.getsize(path)
    secs = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    await client.disconnect()
    print(
        json.dumps(
            {
                "files": len(messages),
                "bytes": total,
                "secs": secs,
                "cpu_secs": cpu,
                "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "cryptg": native,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1]), sys.argv[2]))
