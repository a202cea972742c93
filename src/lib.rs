//! tgparser: one daemon that archives Telegram channels into SQLite, answers Telegram users
//! through a bot, and sends keyword alerts — with every secret sealed at rest and every call to
//! Telegram paced so the account is never banned.
//!
//! Start reading at [`daemon`] (how the parts start and stop), then [`store`] (the database),
//! [`vault`] (sealing), [`supervisor`] and [`health`]. `ARCHITECTURE.md` has the map.

#![forbid(unsafe_code)]

pub mod bot;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod fuzzing;
pub mod guard;
pub mod health;
pub mod logging;
pub mod media;
pub mod notify;
pub mod parser;
pub mod store;
pub mod supervisor;
pub mod text;
pub mod time;
pub mod vault;
