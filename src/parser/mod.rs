//! The parser: the MTProto user client (grammers) that logs the parsing account in and reads
//! channels into the store.
//!
//! - [`session`]: grammers' session over our store, auth keys sealed by the vault;
//! - [`client`]: connecting (a test server with a pre-shared key, such as the fake Telegram, or
//!   Telegram itself);
//! - [`login`]: the login flow (phone → code → 2FA), shared by `tgparser login` and the bot;
//! - [`resolve`]: a channel reference to a channel, through Telegram;
//! - [`backfill`], [`part`]: reading history and running the parser in the daemon;
//! - `follow`: every change to a followed channel, pushed or caught up from its saved pts.

pub mod backfill;
pub mod client;
pub mod control;
pub mod convert;
mod follow;
pub mod login;
pub mod part;
pub mod recheck;
pub mod resolve;
pub mod session;
