//! Bot commands: the table (name, who may use it, usage line), and parsing a message into one.

/// Who may use a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Not allowed: gets one polite refusal.
    Stranger,
    /// Denied by an admin: ignored.
    Denied,
    User,
    Admin,
}

pub struct Command {
    pub name: &'static str,
    pub role: Role,
    /// Arguments, as the usage line shows them ("" for none).
    pub args: &'static str,
    pub about: &'static str,
}

pub const COMMANDS: &[Command] = &[
    Command {
        name: "start",
        role: Role::User,
        args: "",
        about: "what this bot does",
    },
    Command {
        name: "help",
        role: Role::User,
        args: "",
        about: "the commands you can use",
    },
    Command {
        name: "status",
        role: Role::User,
        args: "",
        about: "the parser's health and each channel's progress",
    },
    Command {
        name: "search",
        role: Role::User,
        args: "<words | \"a phrase\" | prefix* | AND OR NOT>",
        about: "search the archive, newest first",
    },
    Command {
        name: "subscribe",
        role: Role::User,
        args: "<words | /regex/> [in @channel]",
        about: "get an alert for each new post that matches",
    },
    Command {
        name: "subscriptions",
        role: Role::User,
        args: "",
        about: "your alerts, with buttons to remove them",
    },
    Command {
        name: "unsubscribe",
        role: Role::User,
        args: "",
        about: "remove alerts (buttons)",
    },
    Command {
        name: "export",
        role: Role::User,
        args: "<@channel | search query>",
        about: "a channel's posts, or a search's, as a JSONL file",
    },
    Command {
        name: "cancel",
        role: Role::User,
        args: "",
        about: "stop what is in progress (a login)",
    },
    Command {
        name: "login",
        role: Role::Admin,
        args: "[phone number | qr]",
        about: "log the parsing account in (phone, code, 2FA password; or qr: a QR code to scan)",
    },
    Command {
        name: "logout",
        role: Role::Admin,
        args: "",
        about: "log the parsing account out",
    },
    Command {
        name: "channels",
        role: Role::Admin,
        args: "",
        about: "the followed channels",
    },
    Command {
        name: "add",
        role: Role::Admin,
        args: "<@channel | t.me link | invite link> [--since YYYY-MM-DD | --last N] [--no-join] [--with-comments] [--media [photo,video,…|all]]",
        about: "follow a channel and read its history",
    },
    Command {
        name: "remove",
        role: Role::Admin,
        args: "<@channel> [--purge]",
        about: "stop following a channel (--purge also deletes its posts)",
    },
    Command {
        name: "pause",
        role: Role::Admin,
        args: "<@channel>",
        about: "pause a channel",
    },
    Command {
        name: "resume",
        role: Role::Admin,
        args: "<@channel>",
        about: "resume a paused channel",
    },
    Command {
        name: "allow",
        role: Role::Admin,
        args: "<user id>",
        about: "let a Telegram user use this bot",
    },
    Command {
        name: "deny",
        role: Role::Admin,
        args: "<user id>",
        about: "stop a user from using this bot (their alerts stop too)",
    },
];

/// The longest argument text accepted (a channel reference, a user id, flags, a search).
pub const MAX_ARGS: usize = 256;

pub fn find(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name == name)
}

pub fn usage(c: &Command) -> String {
    if c.args.is_empty() {
        format!("/{}", c.name)
    } else {
        format!("/{} {}", c.name, c.args)
    }
}

/// A message that is a command meant for this bot.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Lower case, without `/` and `@bot`.
    pub name: String,
    pub args: &'a str,
}

/// Reads `/name[@bot] args`. `None` when the text is not a command, or is addressed to another
/// bot, or (in a group, where `addressed` is required) does not name this bot.
pub fn parse<'a>(text: &'a str, me: &str, require_address: bool) -> Option<Parsed<'a>> {
    let rest = text.strip_prefix('/')?;
    let (head, args) = match rest.find(char::is_whitespace) {
        Some(i) => (&rest[..i], rest[i..].trim()),
        None => (rest, ""),
    };
    let (name, bot) = match head.split_once('@') {
        Some((n, b)) => (n, Some(b)),
        None => (head, None),
    };
    match bot {
        Some(b) if !b.eq_ignore_ascii_case(me) => return None,
        None if require_address => return None,
        _ => {}
    }
    if name.is_empty()
        || name.len() > 32
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return None;
    }
    Some(Parsed {
        name: name.to_ascii_lowercase(),
        args,
    })
}

/// The commands `role` may use, as `/help` lists them.
pub fn help_text(role: Role) -> String {
    let mut out = String::from("Commands:\n");
    for c in COMMANDS.iter().filter(|c| c.role <= role) {
        out.push_str(&format!("{} - {}\n", usage(c), c.about));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_with_and_without_the_bot_name() {
        let p = parse("/Add@TgParserBot  @durov --last 5", "tgparserbot", false).unwrap();
        assert_eq!(p.name, "add");
        assert_eq!(p.args, "@durov --last 5");
        assert_eq!(parse("/help", "b", false).unwrap().args, "");
        assert_eq!(parse("/help@other_bot", "b", false), None, "another bot's");
        assert_eq!(
            parse("/help", "b", true),
            None,
            "a group needs the bot named"
        );
        assert!(parse("/help@b", "b", true).is_some());
        assert_eq!(parse("hello", "b", false), None);
        assert_eq!(parse("/", "b", false), None);
        assert_eq!(parse("/не_команда", "b", false), None);
        assert_eq!(parse("/x\ny", "b", false).unwrap().args, "y");
    }

    #[test]
    fn help_lists_only_what_the_role_may_use() {
        let user = help_text(Role::User);
        assert!(user.contains("/status"));
        assert!(!user.contains("/allow"));
        let admin = help_text(Role::Admin);
        assert!(admin.contains("/allow <user id>"));
        assert!(admin.contains("/status"));
    }
}
