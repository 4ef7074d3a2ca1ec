//! Alertmanager's two JSON shapes: API v2 postable alerts, and the v4 webhook envelope.
//!
//! - [`postable_alerts`] (and [`postable_alerts_with_context`]) build the body of
//!   `POST {url}/api/v2/alerts`, which forwards alerts to another Alertmanager:
//!   `[{labels, annotations, startsAt, endsAt?, generatorURL?}]`.
//! - [`webhook_envelope`] is the payload Alertmanager's webhook receiver sends (prometheus/alertmanager
//!   `notify/webhook/webhook.go` `Message` over `template/template.go` `Data`):
//!   `{version:"4", groupKey, truncatedAlerts, status, receiver, groupLabels, commonLabels,
//!   commonAnnotations, externalURL, alerts:[{status, labels, annotations, startsAt, endsAt,
//!   generatorURL, fingerprint}]}`. As in Alertmanager, an alert without an end has the zero time
//!   `0001-01-01T00:00:00Z` as `endsAt`, and a missing generator URL is `""`.
//!
//! Timestamps are RFC 3339 in UTC with milliseconds.
//!
//! **`generatorURL` must be an absolute URI.** Alertmanager's API declares it `format: uri`
//! (`api/v2/openapi.yaml`, <https://github.com/prometheus/alertmanager/blob/main/api/v2/openapi.yaml>),
//! and go-openapi checks that format with Go's `url.ParseRequestURI`
//! (<https://pkg.go.dev/net/url#ParseRequestURI>; newer go-openapi/strfmt strips a `#fragment`
//! first). A value it refuses fails the whole request with 422, and would on every retry. So
//! [`postable_alerts`] forwards a generator URL only when [`is_absolute_request_uri`] holds, and
//! leaves the field out otherwise (an absent `generatorURL` is valid). That check is
//! `ParseRequestURI` itself, reimplemented, passed both with and without the fragment (so that
//! every version accepts it), and it also wants a scheme: `ParseRequestURI` lets a bare path like
//! `/graph?…` through, but on another Alertmanager that link would point at the wrong host.

use alert_core::{Alert, AlertStatus, Annotations, EnrichedAlert, Labels, wire};
use serde::Serialize;
use serde_json::{Value, json};

use crate::context::FormatContext;
use crate::error::FormatError;

/// The webhook envelope's `version`.
pub const WEBHOOK_VERSION: &str = "4";

/// How Go's zero `time.Time` serialises; Alertmanager's `endsAt` for an alert without an end.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Builds the JSON array for `POST {url}/api/v2/alerts`, each alert with the status its caller
/// decided (the job's, fixed when the job was made).
///
/// A resolved alert keeps its own `endsAt`. A firing alert is sent without `endsAt`, even when it
/// has one (ingest gives every open alert an effective end of now + `resolve_timeout`): while it
/// fires, alertpub re-forwards it every `refresh_interval`, so the upstream Alertmanager's own
/// `resolve_timeout` decides when it lapses. If alertpub stops refreshing it (because it stopped,
/// say), the upstream resolves it on its own, as it would for Prometheus. To forward a resolve the
/// caller decided on (an auto-resolve of an alert without an end), use
/// [`postable_alerts_with_context`].
///
/// # Errors
/// [`FormatError::Serialize`] only if JSON serialisation fails, which it does not for these types.
pub fn postable_alerts(alerts: &[(&Alert, FormatContext)]) -> Result<Vec<u8>, FormatError> {
    to_postable(alerts.iter().copied())
}

/// Like [`postable_alerts`], with the status the caller decided: when `ctx` resolves and an alert
/// has no end, `ctx.now` is sent as its `endsAt`, because the upstream Alertmanager would otherwise
/// take the alert as still firing.
///
/// # Errors
/// [`FormatError::Serialize`] only if JSON serialisation fails, which it does not for these types.
pub fn postable_alerts_with_context(
    alerts: &[&Alert],
    ctx: &FormatContext,
) -> Result<Vec<u8>, FormatError> {
    to_postable(alerts.iter().map(|alert| (*alert, *ctx)))
}

fn to_postable<'a>(
    alerts: impl Iterator<Item = (&'a Alert, FormatContext)>,
) -> Result<Vec<u8>, FormatError> {
    let postable: Vec<PostableAlert<'_>> = alerts
        .map(|(alert, ctx)| PostableAlert {
            labels: alert.labels(),
            annotations: alert.annotations(),
            starts_at: wire::format_timestamp(alert.starts_at()),
            ends_at: (ctx.status == AlertStatus::Resolved)
                .then(|| ctx.effective_ends_at(alert))
                .flatten()
                .map(wire::format_timestamp),
            generator_url: alert
                .generator_url()
                .filter(|url| is_absolute_request_uri(url)),
        })
        .collect();
    Ok(serde_json::to_vec(&postable)?)
}

/// Whether an upstream Alertmanager accepts `url` as a `generatorURL`: an absolute URI (a scheme,
/// then `:`) that Go's `url.ParseRequestURI` parses, with its `#fragment` and without it. See the
/// module docs.
#[must_use]
pub fn is_absolute_request_uri(url: &str) -> bool {
    let without_fragment = url.split_once('#').map_or(url, |(before, _)| before);
    [url, without_fragment]
        .into_iter()
        .all(|candidate| request_uri::scheme(candidate).is_some_and(|scheme| !scheme.is_empty()))
}

/// Builds the v4 webhook payload for these alerts, each with the status its caller decided.
///
/// `status` is `firing` when any alert fires, else `resolved`. `commonLabels` and
/// `commonAnnotations` hold the pairs every alert shares with equal values. alertpub does not group,
/// so `groupLabels` is `{}` and `truncatedAlerts` is 0.
#[must_use]
pub fn webhook_envelope(
    alerts: &[(&EnrichedAlert, AlertStatus)],
    receiver: &str,
    group_key: &str,
    external_url: &str,
) -> Value {
    let any_firing = alerts.iter().any(|(_, s)| *s == AlertStatus::Firing);
    let status = if any_firing {
        AlertStatus::Firing
    } else {
        AlertStatus::Resolved
    };
    let entries: Vec<Value> = alerts
        .iter()
        .map(|(enriched, status)| {
            let alert = &enriched.alert;
            json!({
                "status": status.as_str(),
                "labels": alert.labels(),
                "annotations": alert.annotations(),
                "startsAt": wire::format_timestamp(alert.starts_at()),
                "endsAt": alert
                    .ends_at()
                    .map_or_else(|| ZERO_TIME.to_owned(), wire::format_timestamp),
                "generatorURL": alert.generator_url().unwrap_or(""),
                "fingerprint": alert.fingerprint().to_string(),
            })
        })
        .collect();
    json!({
        "version": WEBHOOK_VERSION,
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status.as_str(),
        "receiver": receiver,
        "groupLabels": {},
        "commonLabels": common(alerts.iter().map(|(a, _)| a.alert.labels())),
        "commonAnnotations": common(alerts.iter().map(|(a, _)| a.alert.annotations())),
        "externalURL": external_url,
        "alerts": entries,
    })
}

/// The v4 webhook message of one alert, exactly as Alertmanager sends it for one alert in a
/// group (`group_by: ['...']`): the alert's status decided by the caller, a zero `endsAt` while
/// it fires (Alertmanager's template data sets `EndsAt` only once an alert is resolved), and the
/// resolve's end ([`FormatContext::effective_ends_at`]) once resolved, so a receiver never reads
/// a resolve without an end. The `fingerprint` is Alertmanager's own (the same hash of the
/// labels), and `groupKey` is `{}:{fingerprint="<fingerprint>"}`, one group per alert.
///
/// # Errors
/// [`FormatError::Serialize`] only if JSON encoding fails.
pub fn webhook_message(
    alert: &EnrichedAlert,
    ctx: &FormatContext,
    receiver: &str,
    external_url: &str,
) -> Result<Vec<u8>, FormatError> {
    let group_key = format!("{{}}:{{fingerprint=\"{}\"}}", alert.alert.fingerprint());
    let mut envelope = webhook_envelope(&[(alert, ctx.status)], receiver, &group_key, external_url);
    envelope["alerts"][0]["endsAt"] = match ctx.status {
        AlertStatus::Firing => ZERO_TIME.into(),
        AlertStatus::Resolved => {
            wire::format_timestamp(ctx.effective_ends_at(&alert.alert).unwrap_or(ctx.now)).into()
        }
    };
    Ok(serde_json::to_vec(&envelope)?)
}

/// The pairs present, with equal values, in every map; empty when there are no maps.
fn common<'a>(mut maps: impl Iterator<Item = &'a Labels>) -> Labels {
    let Some(first) = maps.next() else {
        return Labels::new();
    };
    let mut shared = first.clone();
    for map in maps {
        shared.retain(|name, value| map.get(name) == Some(value));
        if shared.is_empty() {
            break;
        }
    }
    shared
}

#[derive(Serialize)]
struct PostableAlert<'a> {
    labels: &'a Labels,
    annotations: &'a Annotations,
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "endsAt", skip_serializing_if = "Option::is_none")]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    generator_url: Option<&'a str>,
}

/// Go's `net/url.ParseRequestURI`, as far as deciding whether it fails: `parse(rawURL, true)`,
/// `getScheme`, `parseAuthority`, `parseHost`, `validOptionalPort`, `validUserinfo` and the error
/// cases of `unescape`, in Go 1.22's `src/net/url/url.go`. Bracketed hosts are held to a valid
/// IPv6 address, as newer Go releases do.
mod request_uri {
    use std::net::Ipv6Addr;

    /// The scheme (empty when there is none) when `ParseRequestURI(raw)` succeeds.
    pub(super) fn scheme(raw: &str) -> Option<&str> {
        // stringContainsCTLByte
        if raw.is_empty() || raw.bytes().any(|b| b < b' ' || b == 0x7f) {
            return None;
        }
        if raw == "*" {
            return Some("");
        }
        let (scheme, rest) = split_scheme(raw)?;
        let rest = match rest.strip_suffix('?') {
            Some(before) if !before.contains('?') => before,
            _ => rest.split_once('?').map_or(rest, |(before, _)| before),
        };
        if !rest.starts_with('/') {
            // A rootless path after a scheme is opaque (`mailto:ops@example.com`); without a
            // scheme, a request URI must start with `/`.
            return (!scheme.is_empty()).then_some(scheme);
        }
        let mut path = rest;
        if !scheme.is_empty()
            && let Some(after) = rest.strip_prefix("//")
        {
            let (authority, tail) = after.find('/').map_or((after, ""), |i| after.split_at(i));
            if !valid_authority(authority) {
                return None;
            }
            path = tail;
        }
        valid_escapes(path, false).then_some(scheme)
    }

    /// `getScheme`: the scheme and the rest, or `None` for "missing protocol scheme".
    fn split_scheme(raw: &str) -> Option<(&str, &str)> {
        for (i, c) in raw.bytes().enumerate() {
            match c {
                b'a'..=b'z' | b'A'..=b'Z' => {}
                b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
                b':' if i == 0 => return None,
                b':' => return Some((&raw[..i], &raw[i + 1..])),
                _ => return Some(("", raw)),
            }
        }
        Some(("", raw))
    }

    /// `parseAuthority`: an optional `userinfo@`, then the host.
    fn valid_authority(authority: &str) -> bool {
        match authority.rfind('@') {
            None => valid_host(authority),
            Some(at) => {
                let (userinfo, host) = (&authority[..at], &authority[at + 1..]);
                valid_host(host)
                    && userinfo
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&b))
                    && valid_escapes(userinfo, false)
            }
        }
    }

    /// `parseHost`: a bracketed IPv6 literal with an optional port, or a name with an optional
    /// port, and only the characters a host may hold.
    fn valid_host(host: &str) -> bool {
        if let Some(bracketed) = host.strip_prefix('[') {
            let Some(close) = bracketed.rfind(']') else {
                return false;
            };
            let (literal, port) = (&bracketed[..close], &bracketed[close + 1..]);
            let address = literal
                .split_once("%25")
                .map_or(literal, |(address, _)| address);
            return valid_port(port) && address.parse::<Ipv6Addr>().is_ok();
        }
        if let Some(colon) = host.rfind(':')
            && !valid_port(&host[colon..])
        {
            return false;
        }
        valid_escapes(host, true)
    }

    /// `validOptionalPort`: empty, or `:` and digits.
    fn valid_port(port: &str) -> bool {
        port.is_empty()
            || port
                .strip_prefix(':')
                .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
    }

    /// `unescape`'s failures: a `%` not followed by two hex digits; and in a host, an escaped
    /// ASCII byte other than `%25`, or an ASCII byte a host may not hold.
    fn valid_escapes(text: &str, host: bool) -> bool {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let (Some(&high), Some(&low)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
                    return false;
                };
                if !high.is_ascii_hexdigit() || !low.is_ascii_hexdigit() {
                    return false;
                }
                if host && high < b'8' && &bytes[i..i + 3] != b"%25" {
                    return false;
                }
                i += 3;
            } else {
                let c = bytes[i];
                if host
                    && c < 0x80
                    && !(c.is_ascii_alphanumeric() || b"!$&'()*+,;=:[]<>\"-_.~".contains(&c))
                {
                    return false;
                }
                i += 1;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::is_absolute_request_uri;

    #[test]
    fn absolute_request_uris_are_kept() {
        for url in [
            "http://prom/graph",
            "https://prometheus.example.com:9090/graph?g0.expr=up%3D%3D0&g0.tab=1",
            "http://[::1]:9090/graph",
            "http://[fe80::1%25eth0]/graph",
            "http://user:p%40ss@prom:9090/graph",
            "http://prom/graph?g0.expr=rate(x[5m])#panel",
            "http://prom:9090",
            "http://prom/graph?",
            "http://ünïcode.example/pfad",
            // Opaque, but `ParseRequestURI` takes them, and so does Alertmanager.
            "mailto:ops@example.com",
            "prometheus:9090/graph",
        ] {
            assert!(is_absolute_request_uri(url), "{url}");
        }
    }

    #[test]
    fn what_alertmanager_would_refuse_is_dropped() {
        for url in [
            "",
            "prometheus.local/graph",
            "foo/bar",
            ":9090/graph",
            "1http://prom/graph",
            "http://prom/graph%zz",
            "http://prom/graph%2",
            "http://prom:90a/graph",
            "http://exa mple.com/graph",
            "http://pr%41m/graph",
            "http://prom/gr\naph",
            "http://prom/graph\u{7f}",
            "http://[::1/graph",
            "http://[not-ipv6]/graph",
            "http://us er@prom/graph",
            // Older go-openapi does not strip the fragment, and reads `host#` as userinfo.
            "https://prom#@frag",
            // Bare paths pass `ParseRequestURI`, but point at the wrong host upstream.
            "/graph?g0.expr=up",
            "//prom/graph",
        ] {
            assert!(!is_absolute_request_uri(url), "{url:?}");
        }
    }
}
