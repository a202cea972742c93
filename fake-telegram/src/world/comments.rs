//! Comments (core.telegram.org/api/threads#channel-comments): a channel with comments has a
//! linked discussion supergroup. Each new post is forwarded there automatically (the copy's
//! `fwd_from` names the channel and the post), and a comment is a group message that replies
//! to that copy. The post's `replies` says how many comments it has and which group holds them;
//! `messages.getReplies` on the channel's post lists them.

use super::{Channel, FwdFrom, Post, Sender, World, unix_now};

impl World {
    /// Gives `channel` a discussion group (created, linked). Returns the group's id.
    pub fn enable_comments(&self, channel: i64) -> Result<i64, String> {
        let (title, existing) = {
            let w = self.lock();
            let ch = w.channels.get(&channel).ok_or("no such channel")?;
            (ch.title.clone(), ch.discussion)
        };
        if let Some(g) = existing {
            return Ok(g);
        }
        let group = self.add_channel(None, &format!("{title} Chat"), "comments", 10);
        let mut w = self.lock();
        if let Some(g) = w.channels.get_mut(&group) {
            g.megagroup = true;
            g.discussion_of = Some(channel);
        }
        if let Some(ch) = w.channels.get_mut(&channel) {
            ch.discussion = Some(group);
        }
        Ok(group)
    }

    /// The automatic copy of `channel`'s new post `id` in its discussion group, if it has one.
    /// Called with the world locked, right after the post.
    pub(super) fn forward_to_discussion(&self, w: &mut super::WorldState, channel: i64, id: i32) {
        let Some(ch) = w.channels.get(&channel) else {
            return;
        };
        let (Some(group), Some(post)) = (ch.discussion, ch.posts.get(&id)) else {
            return;
        };
        if post.action.is_some() {
            return;
        }
        let copy_of = post.clone();
        let Some(g) = w.channels.get_mut(&group) else {
            return;
        };
        let copy_id = g.next_id;
        g.next_id += 1;
        g.posts.insert(
            copy_id,
            Post {
                id: copy_id,
                fwd_from: Some(FwdFrom {
                    from_channel_id: Some(channel),
                    from_name: None,
                    date: copy_of.date,
                    channel_post: Some(id),
                }),
                views: 0,
                forwards: 0,
                replies: 0,
                ..copy_of
            },
        );
        g.copies.insert(id, copy_id);
        self.record(w, group, super::ChannelEvent::New(copy_id), true);
    }

    /// A comment by `from` on `channel`'s post `post`. Returns the comment's id in the group.
    pub fn comment(
        &self,
        channel: i64,
        post: i32,
        from: &Sender,
        text: &str,
    ) -> Result<i32, String> {
        let (group, copy) = {
            let w = self.lock();
            let ch = w.channels.get(&channel).ok_or("no such channel")?;
            let group = ch.discussion.ok_or("the channel has no comments")?;
            let copy = w
                .channels
                .get(&group)
                .and_then(|g| g.copies.get(&post).copied())
                .ok_or("that post has no discussion thread")?;
            (group, copy)
        };
        self.lock()
            .channels
            .get_mut(&group)
            .ok_or("no group")?
            .senders
            .insert(from.id, from.clone());
        let text = text.to_string();
        let from_id = from.id;
        let id = self
            .post_with(group, false, |id| Post {
                from_id: Some(from_id),
                reply_to: Some(copy),
                ..Post::text(id, unix_now(), text)
            })
            .ok_or("no group")?;
        if let Some(p) = self
            .lock()
            .channels
            .get_mut(&channel)
            .and_then(|c| c.posts.get_mut(&post))
        {
            p.replies += 1;
        }
        Ok(id)
    }
}

impl Channel {
    /// The comments on post `post` of this channel's discussion `group`, newest first.
    pub fn comments_in<'a>(&self, group: &'a Channel, post: i32) -> Vec<&'a Post> {
        let Some(copy) = group.copies.get(&post) else {
            return Vec::new();
        };
        group
            .posts
            .values()
            .rev()
            .filter(|p| p.reply_to == Some(*copy))
            .collect()
    }
}
