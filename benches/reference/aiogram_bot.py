"""Reference for `cargo bench --bench bot`: the same two commands answered by aiogram 3 against
the same fake Bot API, so the benchmark can print a same-run peer figure beside its own.

Usage: python aiogram_bot.py <api base url> <token file>
"""
import asyncio
import sys

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import Command
from aiogram.types import Message

HELP = "Commands:\n/help - the commands you can use\n/status - the parser's health"


async def main() -> None:
    base, token_file = sys.argv[1], sys.argv[2]
    with open(token_file) as f:
        token = f.read().strip()
    session = AiohttpSession(api=TelegramAPIServer.from_base(base))
    bot = Bot(token, session=session)
    dp = Dispatcher()

    @dp.message(Command("help"))
    async def help_(m: Message) -> None:
        await m.answer(HELP)

    @dp.message(Command("status"))
    async def status(m: Message) -> None:
        await m.answer("Status: pass")

    print("ready", flush=True)
    await dp.start_polling(bot, handle_signals=True)


asyncio.run(main())
