//! The YAML config file: parsed and validated, and its targets built by the server's own
//! publisher constructors (no I/O: a config that names secret files is built by a stand-in, so
//! the fuzzer never reads `/dev/zero` or waits on a FIFO).

#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use alert_core::{
    BoxFuture, InMemoryMessageRefs, MessageRefStore, PublishError, PublishRequest, Publisher,
    Receipt, Target, TargetKind,
};
use libfuzzer_sys::fuzz_target;
use publisher_http::{BuildContext, BuildError, ClientConfig, HttpClient};

/// A publisher that is never called.
#[derive(Debug)]
struct Inert;

impl Publisher for Inert {
    fn publish<'a>(
        &'a self,
        _: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Receipt, PublishError>> {
        Box::pin(async { Ok(Receipt::default()) })
    }
}

fn inert(_: &Target) -> Result<Arc<dyn Publisher>, BuildError> {
    Ok(Arc::new(Inert))
}

/// The server's mapping from kind to publisher crate (`PublisherRegistry`), sharing one client.
fn real(target: &Target) -> Result<Arc<dyn Publisher>, BuildError> {
    static SHARED: OnceLock<(HttpClient, Arc<dyn MessageRefStore>)> = OnceLock::new();
    let (client, refs) = SHARED.get_or_init(|| {
        let client = HttpClient::new(&ClientConfig::default()).expect("the default client builds");
        (client, Arc::new(InMemoryMessageRefs::new()))
    });
    let context = BuildContext::new(target.name.clone(), client.clone(), Arc::clone(refs));
    match target.kind {
        TargetKind::Pagerduty => publishers_pagerduty::from_settings(&target.settings, &context),
        TargetKind::Slack => publishers_slack::from_settings(&target.settings, &context),
        TargetKind::Rootly => publishers_rootly::from_settings(&target.settings, &context),
        TargetKind::Webhook => publishers_webhook::from_settings(&target.settings, &context),
        TargetKind::Alertmanager => {
            publishers_alertmanager::from_settings(&target.settings, &context)
        }
        _ => Err(BuildError::Settings(format!(
            "no publisher for kind {}",
            target.kind
        ))),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.yaml");
    let Ok(config) = discovery::parse(text, path) else {
        return;
    };
    let loaded = if discovery::referenced_files(&config).is_empty() {
        discovery::load_str(text, path, &real)
    } else {
        discovery::load_str(text, path, &inert)
    };
    if let Ok(loaded) = loaded {
        assert_eq!(
            loaded.targets.len(),
            config.targets.len(),
            "every target loads"
        );
    }
});
