"""An independent MTProto client against the fake: Telethon 1.45 signs in (wrong code, then the
right one, then 2FA) and reads a channel's whole history. Prints one JSON line."""

import asyncio
import base64
import ipaddress
import json
import struct
import sys

from telethon import TelegramClient
from telethon.errors import PhoneCodeInvalidError, SessionPasswordNeededError
from telethon.sessions import StringSession

API_ID = 94575
API_HASH = "a3406de8d171bb422bb6ddf3bbd800e2"


def session(info):
    # Telethon answers PHONE_MIGRATE by dropping its key and making a new one by key exchange,
    # which the fake cannot do (its keys are pre-shared), so it starts on the account's home DC
    # with that DC's key, as a Telethon session that has been there before does.
    dc = info["home_dc"]
    home = info["dcs"][str(dc)]
    key = bytes.fromhex(home["auth_key"])
    host, port = home["address"].rsplit(":", 1)
    ip = ipaddress.ip_address(host).packed
    data = struct.pack(">B{}sH256s".format(len(ip)), dc, ip, int(port), key)
    return StringSession("1" + base64.urlsafe_b64encode(data).decode("ascii"))


async def main(info):
    client = TelegramClient(session(info), API_ID, API_HASH, receive_updates=False)
    await client.connect()
    result = {"authorized_before": await client.is_user_authorized()}
    await client.send_code_request(info["phone"])
    try:
        await client.sign_in(info["phone"], "00000")
        result["wrong_code"] = "accepted"
    except PhoneCodeInvalidError:
        result["wrong_code"] = "PHONE_CODE_INVALID"
    try:
        await client.sign_in(info["phone"], info["code"])
    except SessionPasswordNeededError:
        await client.sign_in(password=info["password"])
    me = await client.get_me()
    result["me"] = me.first_name
    channel = info["channels"][0]
    result["ids"] = [m.id async for m in client.iter_messages(channel, wait_time=0)]
    result["texts"] = [
        m.message async for m in client.iter_messages(channel, limit=5, wait_time=0)
    ]
    await client.disconnect()
    print(json.dumps(result, ensure_ascii=False))


asyncio.run(main(json.loads(sys.argv[1])))
