//! API keys and limits: security schemes, usage plans, per-operation throttles and plan restrictions.

use super::{inherited, plain_name};
use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::model::{QuotaPeriod, Throttle, UsagePlan};
use crate::parse::ext::{self, ThrottleExt};
use crate::parse::{ParsedOperation, ParsedSpec};

/// A token bucket's figures; `per` is refused where it makes no sense (a plan's bucket is per key).
pub(super) fn check_throttle(
    t: &ThrottleExt,
    at: &str,
    per_allowed: bool,
    diags: &mut Diagnostics,
) -> Option<Throttle> {
    let mut ok = true;
    if t.rate == 0 {
        diags.push(
            Diagnostic::error(format!("{at}/rate"), "`rate` must be at least 1 request a second")
                .help("to refuse every request, leave the operation out with `skip: true`"),
        );
        ok = false;
    }
    let burst = t.burst.unwrap_or(t.rate);
    if t.burst == Some(0) {
        diags.push(Diagnostic::error(format!("{at}/burst"), "`burst` must be at least 1"));
        ok = false;
    }
    if t.per.is_some() && !per_allowed {
        diags.push(
            Diagnostic::error(format!("{at}/per"), "a usage plan's throttle is per API key already")
                .help("remove `per`"),
        );
        ok = false;
    }
    ok.then_some(Throttle {
        rate: t.rate,
        burst: burst.max(1),
        per_ip: t.per == Some(ext::ThrottlePer::Ip),
    })
}

pub(super) fn check_usage_plans(spec: &ParsedSpec, diags: &mut Diagnostics) -> Vec<UsagePlan> {
    let mut plans = Vec::new();
    for (name, plan) in &spec.root.usage_plans {
        let at = format!("/x-gateway/usage_plans/{}", crate::locate::escape_segment(name));
        if !plain_name(name) {
            diags.push(
                Diagnostic::error(&at, format!("plan name `{name}` is not a plain name"))
                    .help("use letters, digits, `-`, `_` and `.`: key files refer to it"),
            );
        }
        let throttle = plan
            .throttle
            .as_ref()
            .and_then(|t| check_throttle(t, &format!("{at}/throttle"), false, diags));
        let quota = plan.quota.as_ref().and_then(|q| {
            if q.limit == 0 {
                diags.push(Diagnostic::error(
                    format!("{at}/quota/limit"),
                    "a quota `limit` must be at least 1",
                ));
                return None;
            }
            let period = match q.period {
                ext::QuotaPeriodExt::Day => QuotaPeriod::Day,
                ext::QuotaPeriodExt::Week => QuotaPeriod::Week,
                ext::QuotaPeriodExt::Month => QuotaPeriod::Month,
            };
            Some((q.limit, period))
        });
        plans.push(UsagePlan {
            name: name.clone(),
            throttle,
            quota,
        });
    }
    plans
}

/// The operation's bucket: its own `throttle`, else its path item's (the top-level one is API-wide, not a default).
pub(super) fn op_throttle(op: &ParsedOperation, diags: &mut Diagnostics) -> Option<Throttle> {
    let (at, t) = inherited(op, "throttle", |e| e.throttle.as_ref())?;
    check_throttle(t, &at, true, diags)
}

/// `plans:` on the operation or its path item: names of defined usage plans.
pub(super) fn check_op_plans(op: &ParsedOperation, plans: &[UsagePlan], diags: &mut Diagnostics) -> Vec<usize> {
    let Some((at, names)) = inherited(op, "plans", |e| e.plans.as_ref()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match plans.iter().position(|p| &p.name == name) {
            Some(index) => out.push(index),
            None => {
                let mut d = Diagnostic::error(format!("{at}/{i}"), format!("usage plan `{name}` is not defined"));
                d = match did_you_mean(name, plans.iter().map(|p| p.name.as_str())) {
                    Some(best) => d.help(format!("did you mean `{best}`?")),
                    None => d.help("define it under the top-level `x-gateway: { usage_plans: { NAME: { ... } } }`"),
                };
                diags.push(d);
            }
        }
    }
    out
}
