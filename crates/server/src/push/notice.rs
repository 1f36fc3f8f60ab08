//! What a pending login says in a notification, and where opening it leads.
//!
//! The payload names the host and the client's address first: a user who did not just log in
//! from that address sees so before doing anything (the lesson of push bombing: a notification
//! that says only "approve?" gets approved). Opening it opens `/approve/<id>` on this server.

use serde::Serialize;

/// A login waiting for the user's approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    /// The request's id, in the approval page's URL (random, unguessable).
    pub id: String,
    /// The host the user is logging in to.
    pub host: String,
    /// The login name.
    pub user: String,
    /// The client's address, if the host knew it.
    pub source: Option<String>,
    /// The PAM service or front end (`sshd`, `sftp`...).
    pub service: String,
    /// The command of a ForceCommand or non-interactive login, if any.
    pub command: Option<String>,
    /// When it was asked (Unix seconds).
    pub created_at: i64,
    /// When it stops being approvable (Unix seconds).
    pub expires_at: i64,
}

/// The JSON a notification carries, to the browser (Web Push) and to a webhook alike.
/// Documented in docs/push.md; receivers may rely on every field named there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payload {
    /// `login` for a pending login, `test` for `push test`.
    pub kind: &'static str,
    /// One line for the notification's title.
    pub title: String,
    /// One line for its body.
    pub body: String,
    /// Where opening it leads: the approval page (absolute).
    pub url: String,
    /// The request's id (absent for a test).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The user.
    pub user: String,
    /// The client's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The command, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// When it was asked (Unix seconds).
    pub time: i64,
    /// When it expires (Unix seconds; absent for a test).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
}

/// Longest command shown: the whole payload must fit one push message (4 KiB encrypted).
const MAX_COMMAND: usize = 512;

impl Payload {
    /// The payload for `login`; `base_url` is the server's public URL (`https://sshield.example`).
    pub fn login(login: &PendingLogin, base_url: &str) -> Self {
        let from = login.source.as_deref().unwrap_or("an unknown address");
        Self {
            kind: "login",
            title: format!("Log in to {} as {}?", login.host, login.user),
            body: format!(
                "From {from} via {}. Open to approve or deny.",
                login.service
            ),
            url: format!("{}/approve/{}", base_url.trim_end_matches('/'), login.id),
            id: Some(login.id.clone()),
            host: Some(login.host.clone()),
            user: login.user.clone(),
            source: login.source.clone(),
            service: Some(login.service.clone()),
            command: login.command.as_deref().map(|c| shorten(c, MAX_COMMAND)),
            time: login.created_at,
            expires: Some(login.expires_at),
        }
    }

    /// The payload of `sshield-server push test USER`.
    /// What the admins' webhook hears when `login`'s user says it wasn't them: who, where
    /// from, and that the user's pushes are blocked until an admin clears it.
    pub fn not_me(login: &PendingLogin, base_url: &str, now: i64) -> Self {
        let from = login.source.as_deref().unwrap_or("an unknown address");
        Self {
            kind: "not-me",
            title: format!("{} says a login to {} wasn't them", login.user, login.host),
            body: format!(
                "From {from} via {}. Pushes to {} are blocked until an admin runs \
                 `sshield-server push unblock {}`.",
                login.service, login.user, login.user
            ),
            url: format!("{}/", base_url.trim_end_matches('/')),
            time: now,
            expires: None,
            ..Self::login(login, base_url)
        }
    }

    pub fn test(user: &str, base_url: &str, now: i64) -> Self {
        Self {
            kind: "test",
            title: "sshield test notification".to_owned(),
            body: format!("Notifications for {user} reach this device."),
            url: format!("{}/", base_url.trim_end_matches('/')),
            id: None,
            host: None,
            user: user.to_owned(),
            source: None,
            service: None,
            command: None,
            time: now,
            expires: None,
        }
    }

    /// The JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_says_which_host_and_address_and_opens_its_approval_page() {
        let login = PendingLogin {
            id: "r7Kq".into(),
            host: "db1".into(),
            user: "alice".into(),
            source: Some("203.0.113.9".into()),
            service: "sshd".into(),
            command: Some("x".repeat(2000)),
            created_at: 100,
            expires_at: 160,
        };
        let payload = Payload::login(&login, "https://sshield.example/");
        assert_eq!(payload.title, "Log in to db1 as alice?");
        assert!(payload.body.contains("203.0.113.9"), "{}", payload.body);
        assert_eq!(payload.url, "https://sshield.example/approve/r7Kq");
        assert!(payload.command.as_deref().is_some_and(|c| c.len() < 600));
        assert!(payload.to_json().len() < super::super::webpush::MAX_PAYLOAD);
    }
}
