//! E-mail: the exact parts, escaping, and the thread's root.

use formatters::Templates;
use formatters::email;

use crate::common::{
    FP, GENERATOR_URL, STARTS_AT, alert_with, at, ctx_firing, ctx_resolved, firing, pairs, resolved,
};

const DESCRIPTION: &str = "/var on db-1 is 95% full\n\n\
                           Labels: alertname=DiskFull, instance=db-1, job=node, severity=critical";

#[test]
fn a_firing_mail() {
    let mail = email::render(&firing(), &ctx_firing(), &Templates::defaults()).unwrap();
    let expected_html = format!(
        "<!DOCTYPE html>\n<html><body>\n<h2 style=\"color:#c0392b\">[FIRING] DiskFull on db-1</h2>\n\
         <p>/var on db-1 is 95% full<br>\n<br>\n\
         Labels: alertname=DiskFull, instance=db-1, job=node, severity=critical</p>\n<table>\n\
         <tr><th align=\"left\">alertname</th><td>DiskFull</td></tr>\n\
         <tr><th align=\"left\">instance</th><td>db-1</td></tr>\n\
         <tr><th align=\"left\">job</th><td>node</td></tr>\n\
         <tr><th align=\"left\">severity</th><td>critical</td></tr>\n</table>\n\
         <p><a href=\"{GENERATOR_URL}\">Source</a></p>\n</body></html>\n"
    );
    assert_eq!(mail.subject, "[FIRING] DiskFull on db-1");
    assert_eq!(mail.text, DESCRIPTION);
    assert_eq!(mail.html, expected_html);
}

#[test]
fn a_resolve_mail_is_green() {
    let mail = email::render(&resolved(), &ctx_resolved(), &Templates::defaults()).unwrap();
    assert_eq!(mail.subject, "[RESOLVED] DiskFull on db-1");
    assert!(mail.html.contains("color:#27ae60"));
}

#[test]
fn alert_text_is_escaped_and_cannot_break_the_subject() {
    let alert = alert_core::EnrichedAlert::new(alert_with(
        pairs(&[("alertname", "<script>x</script>")]),
        pairs(&[("description", "a & b\r\nBcc: evil@example.com")]),
    ));
    let mail = email::render(&alert, &ctx_firing(), &Templates::defaults()).unwrap();
    assert!(!mail.html.contains("<script>"), "{}", mail.html);
    assert!(mail.html.contains("&lt;script&gt;x&lt;/script&gt;"));
    assert!(mail.html.contains("a &amp; b"));
    assert!(!mail.subject.contains('\n') && !mail.subject.contains('\r'));
}

#[test]
fn the_thread_root_depends_on_the_fingerprint_the_start_and_the_domain() {
    let root = email::thread_root(firing().alert.fingerprint(), at(STARTS_AT), "example.com");
    assert_eq!(root, format!("<alertpub.{FP}.1767323045000@example.com>"));
    assert_eq!(
        root,
        email::thread_root(
            resolved().alert.fingerprint(),
            resolved().alert.starts_at(),
            "example.com"
        )
    );
}
