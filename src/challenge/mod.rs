//! RFC 8823 `email-reply-00`, pure: judging challenge mails and building the response.

pub mod authenticity;
pub mod mail;
pub mod response;
