//! The engine's side of what is learned about a CA: choosing the join an order answers with
//! (and saying where it comes from), keeping a join a validated order proves, and turning a
//! refused reply into the one more order with the other join, also when a run was killed
//! between the refusal and that order. IO driver over the decisions in `learn`.

use super::Pending;
use super::learn::{self, Source};
use super::watch::{Ctx, Verdict};
use crate::Error;
use crate::acme::client::AcmeClient;
use crate::acme::types::{Authorization, Status};

/// Decides the join this order's replies use, and says where it comes from.
pub(super) fn choose_join(ctx: &Ctx<'_>, pending: &mut Pending) {
    let settings = ctx.settings;
    // Once a reply has gone out, the order keeps the join it was answered with, whatever this
    // run was told: a validation then proves that join, not the one given now.
    let answered = pending.answers.iter().any(|a| a.gone_out());
    let (join, source) = match (settings.token_join.fixed(), pending.token_join) {
        (_, Some(join)) if answered => (join, Source::Order),
        (None, Some(join)) if pending.rejected_join.is_some() => (join, Source::Retry),
        (None, Some(join)) => (join, Source::Order),
        _ => {
            let learned = learn::load(ctx.store, &settings.server);
            let table = crate::known_cas::by_url(&settings.server);
            learn::first_join(settings.token_join, &learned, table)
        }
    };
    ctx.out
        .info(&format!("token join {join} ({})", source.describe()));
    pending.token_join = Some(join);
}

/// Keeps the join a validated order proves for the CA.
pub(super) fn keep_join(ctx: &Ctx<'_>, pending: &Pending) {
    let Some(join) = learn::proven_join(pending) else {
        return;
    };
    let server = &ctx.settings.server;
    let mut learned = learn::load(ctx.store, server);
    learned.token_join = Some(join);
    match learn::save(ctx.store, &learned) {
        Ok(true) => ctx.out.info(&format!(
            "learned: {server} joins the token parts as {join} (kept in {})",
            learn::path(ctx.store, server).display()
        )),
        Ok(false) => {}
        Err(e) => ctx
            .out
            .warn(&format!("could not keep what was learned: {e}")),
    }
}

/// After the CA refused the reply: the record of one more order with the other join, saved in
/// place of the refused one (its answered mails stay in the answered list), when `auto` allows
/// it; else the refusal as the run's error.
pub(super) fn reorder(
    ctx: &Ctx<'_>,
    pending: &Pending,
    refused: Verdict,
) -> Result<Pending, Error> {
    let problem = match &refused {
        Verdict::Refused { problem, .. } => problem.as_ref(),
        Verdict::Valid => None,
    };
    let Some(join) = learn::reorder_join(ctx.settings.token_join, pending, problem) else {
        return Err(refused.into_error());
    };
    ctx.out.info(&format!(
        "the CA rejected the reply joined as {} ({}); the joins differ for this token: ordering \
         once more, answered with the {join} join",
        join.other(),
        problem.map(ToString::to_string).unwrap_or_default()
    ));
    let next = learn::retry_record(pending, join);
    ctx.save(&next)?;
    Ok(next)
}

/// For a saved order that the CA made invalid: the record of the one more order with the other
/// join, when the CA rejected the reply and `auto` allows it (a run killed between the refusal
/// and the new order).
pub(super) fn reorder_after_kill(
    ctx: &Ctx<'_>,
    acme: &mut AcmeClient,
    pending: &Pending,
) -> Result<Option<Pending>, Error> {
    if ctx.settings.token_join.fixed().is_some()
        || pending.rejected_join.is_some()
        || !pending.replied()
    {
        return Ok(None);
    }
    let Some(url) = pending.authorization_url.as_deref() else {
        return Ok(None);
    };
    let problem = match acme.fetch::<Authorization>(ctx.key, &pending.account_url, url) {
        Ok((authz, _)) => authz.email_reply().and_then(|c| c.error.clone()),
        Err(_) => None,
    };
    if learn::reorder_join(ctx.settings.token_join, pending, problem.as_ref()).is_none() {
        return Ok(None);
    }
    let refused = Verdict::Refused {
        status: Status::Invalid,
        problem,
    };
    reorder(ctx, pending, refused).map(Some)
}
