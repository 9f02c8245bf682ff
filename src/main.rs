//! The `dialerd` binary: reads top to bottom as the daemon's life.

use anyhow::Context;
use clap::{Parser, Subcommand};
use dialerd::config::{self, Config};
use dialerd::media::engine::MediaEngine;
use dialerd::shutdown::{Drained, Shutdown};
use dialerd::signal::{Signal, Signals};
use dialerd::store::{
    calling_rules::CallingRules, users::AdminBootstrap, Location, Store, DB_FILE,
};
use dialerd::{
    api, call, dialer, health::Health, lines, logging, memory, metrics::Metrics, sip, state,
    systemd,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "dialerd",
    version,
    about = "SIP telephony and predictive-dialer daemon"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground.
    Run {
        /// Config file [default: conf/dialerd.toml if present, else /etc/dialerd/dialerd.toml]
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Place a test call through a trunk of the running daemon and print the outcome.
    TestCall {
        /// Trunk name, as in [[trunks]].
        #[arg(long)]
        trunk: String,
        /// Number to call.
        #[arg(long)]
        to: String,
        /// Caller ID to send [default: the trunk's]
        #[arg(long)]
        caller_id: Option<String>,
        /// Config file of the running daemon (for its http.listen) [default: as for `run`]
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Simulate a call-centre day on virtual time and report pacing quality per dial mode.
    Simulate {
        /// Scenario file (TOML), e.g. benches/pacing/scenario-a.toml.
        #[arg(long)]
        scenario: PathBuf,
        /// One mode (preview, progressive, power, predictive) [default: all]
        #[arg(long)]
        mode: Option<String>,
        /// Seed of the random draws; the same seed gives the same day.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// One JSON object per mode instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Validate the configuration and print it, effective values, secrets masked.
    CheckConfig {
        /// Config file [default: as for `run`]
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(&config.unwrap_or_else(config::default_path)),
        Command::CheckConfig { config } => {
            check_config(&config.unwrap_or_else(config::default_path))
        }
        Command::Simulate {
            scenario,
            mode,
            seed,
            json,
        } => simulate(&scenario, mode.as_deref(), seed, json),
        Command::TestCall {
            trunk,
            to,
            caller_id,
            config,
        } => test_call(
            &config.unwrap_or_else(config::default_path),
            &trunk,
            &to,
            caller_id.as_deref(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, naming what is wrong; no backtrace.
            eprintln!("dialerd: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error chain on one line, leaving out causes a message already quotes.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

/// Asks the running daemon (over its admin listener) for a test call and prints the report.
fn test_call(path: &Path, trunk: &str, to: &str, caller_id: Option<&str>) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let cfg = config::load(path)?;
    let mut addr = cfg.http.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let token = admin_token(&state::resolve(&cfg.state_dir))?;
    let body = serde_json::json!({ "to": to, "caller_id": caller_id }).to_string();
    let mut stream = std::net::TcpStream::connect(addr)
        .with_context(|| format!("cannot reach the daemon at http.listen {addr}"))?;
    write!(
        stream,
        "POST /api/v1/trunks/{trunk}/test-call HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = String::new();
    stream.read_to_string(&mut resp)?;
    let (head, json) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let value: serde_json::Value = serde_json::from_str(json.trim()).with_context(|| {
        format!(
            "unexpected answer from the daemon: {}",
            head.lines().next().unwrap_or("")
        )
    })?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    match value.get("outcome").and_then(|o| o.as_str()) {
        Some("answered") => Ok(()),
        Some(other) => anyhow::bail!("test call {other}"),
        None => anyhow::bail!(
            "{}",
            value
                .get("error")
                .or_else(|| value.get("detail"))
                .and_then(|e| e.as_str())
                .unwrap_or("test call failed")
        ),
    }
}

/// The admin API token: `$DIALERD_ADMIN_TOKEN`, else `admin.token` in the state directory.
fn admin_token(state_dir: &Path) -> anyhow::Result<String> {
    if let Some(t) = std::env::var("DIALERD_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        return Ok(t.trim().to_string());
    }
    let file = state_dir.join("admin.token");
    let token = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "cannot read the admin token from {} (set DIALERD_ADMIN_TOKEN instead)",
            file.display()
        )
    })?;
    Ok(token.trim().to_string())
}

/// Runs the pacing simulator and prints one report per mode.
fn simulate(scenario: &Path, mode: Option<&str>, seed: u64, json: bool) -> anyhow::Result<()> {
    let reports = dialer::simulator::run_file(scenario, mode, seed)?;
    if json {
        for r in &reports {
            println!("{}", serde_json::to_string(r)?);
        }
        return Ok(());
    }
    if let Some(r) = reports.first() {
        println!(
            "scenario {} ({} agents, {} h), seed {seed}",
            r.scenario, r.agents, r.hours
        );
    }
    println!(
        "{:<12} {:>7} {:>7} {:>6} {:>14} {:>6} {:>10} {:>10} {:>9} {:>10} {:>18}",
        "mode",
        "placed",
        "cut",
        "live",
        "abandoned",
        "occup",
        "talk/ag-h",
        "idle mean",
        "idle p95",
        "max 24h",
        "worst hour"
    );
    for r in &reports {
        let worst = r.worst_hour.map_or("-".to_string(), |w| {
            format!(
                "h{} {}/{} {:.1}%",
                w.hour,
                w.abandoned,
                w.live,
                100.0 * w.ratio
            )
        });
        println!(
            "{:<12} {:>7} {:>7} {:>6} {:>7} ({:>4.1}%) {:>5.1}% {:>8.1} m {:>8.1} s {:>7.1} s {:>9.2}% {:>18}",
            r.mode,
            r.calls_placed,
            r.hung_up_ringing,
            r.live_answers,
            r.abandoned,
            100.0 * r.abandon_ratio,
            100.0 * r.occupancy,
            r.talk_minutes_per_agent_hour,
            r.idle_mean_s,
            r.idle_p95_s,
            100.0 * r.highest_24h_abandon_ratio,
            worst
        );
    }
    Ok(())
}

fn check_config(path: &Path) -> anyhow::Result<()> {
    let cfg = config::load(path)?;
    print!(
        "# effective configuration from {}\n{}",
        path.display(),
        toml::to_string(&cfg)?
    );
    Ok(())
}

fn run(path: &Path) -> anyhow::Result<()> {
    let cfg = config::load(path)?;
    let log = logging::init(&cfg.log)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve(path, cfg, log))
}

async fn serve(path: &Path, mut cfg: Config, log: logging::LogHandle) -> anyhow::Result<()> {
    let mut signals = Signals::new().context("cannot install signal handlers")?;
    let metrics = Metrics::new(&cfg.node.resolved())?;
    let health = Health::new();
    let shutdown = Shutdown::new();

    state::restrict_umask();
    let state_dir = state::prepare(&state::resolve(&cfg.state_dir))?;
    tracing::info!(version = env!("CARGO_PKG_VERSION"), config = %path.display(), state_dir = %state_dir.display(), node = %cfg.node.resolved(), "dialerd starting");

    // Before the store is opened: a second daemon on this state directory stops here.
    let state_lock = dialerd::node::StateLock::acquire(&state_dir)?;
    let store = open_store(&state_dir, &cfg.store)
        .await?
        .with_import_limits(cfg.import)
        .with_node(&cfg.node.resolved())
        .with_calling_rules(CallingRules::from_config(&cfg.calling_rules)?)
        .with_timings(dialerd::store::timings::Timings::register(
            metrics.registry(),
        )?);
    // Before anything is dialled: a second daemon of this name would share its leases.
    let node = dialerd::node::Node::claim(
        store.clone(),
        cfg.node.resolved(),
        cfg.node.sip_uri.clone(),
        state_lock,
    )
    .await?;
    let node_stop = tokio_util::sync::CancellationToken::new();
    // Renewed until the drain has ended: the node's calls and leases live until then.
    let node_beat = tokio::spawn(node.clone().heartbeat(node_stop.clone()));
    metrics
        .registry()
        .register(Box::new(dialerd::health::ReadyCollector::new(
            health.clone(),
        )?))?;
    metrics
        .registry()
        .register(Box::new(state::DiskCollector::new(&state_dir)?))?;
    let api_metrics = api::metrics::ApiMetrics::register(metrics.registry())?;
    let flow_metrics = dialerd::flow::FlowMetrics::register(metrics.registry())?;
    let webhooks = dialerd::flow::webhook::WebhookClient::new(cfg.flow.webhook_ca_file.as_deref())?;
    let mailer = dialerd::flow::email::Mailer::new(&cfg.email)?;
    let http = api::bind(cfg.http.listen).await?;
    let media = MediaEngine::new(&cfg.media, metrics.registry())
        .with_context(|| format!("media.prompts_dir {}", cfg.media.prompts_dir.display()))?;
    let sip = sip::endpoint::start(&cfg, metrics.registry(), &shutdown).await?;
    let sip_logins = api::users::load_sip_logins(&store, &sip.accounts).await?;
    tracing::info!(accounts = sip_logins, "agents' SIP logins loaded");
    let lines = lines::Lines::new(
        store.clone(),
        sip.sip.clone(),
        media.clone(),
        cfg.lines.clone(),
        lines::LineMetrics::register(metrics.registry())?,
    );
    lines.refresh_gauge().await;
    tokio::spawn(
        lines
            .clone()
            .expire_codes_periodically(std::time::Duration::from_secs(30), shutdown.token()),
    );
    let agents = dialerd::agents::Agents::new(
        dialerd::agents::AgentsConfig {
            pause_reasons: cfg.sessions.pause_reasons.clone(),
            ring_timeout: cfg.sessions.ring_timeout,
            accounts: cfg.agents.iter().map(|a| a.username.clone()).collect(),
        },
        sip.sip.clone(),
        media.clone(),
        metrics.registry(),
    )?;
    let (campaign_tx, campaign_rx) = tokio::sync::mpsc::unbounded_channel();
    let agents = agents
        .with_campaign_inputs(campaign_tx)
        .with_webrtc(dialerd::webrtc::WebRtc::new(&cfg.webrtc)?.with_metrics(metrics.registry())?);
    let (call_log, call_writer) = call::record::CallLog::new(store.clone(), &state_dir);
    let live_metrics = dialerd::dialer::live::metrics::LiveMetrics::register(metrics.registry())?;
    let (supervisor, live) = dialerd::dialer::live::Supervisor::new(
        cfg.node.resolved(),
        store.clone(),
        sip.sip.clone(),
        media.clone(),
        agents.clone(),
        call_log.clone(),
        live_metrics.clone(),
    );
    // Calls from trunks for caller-ID lines: callbacks to the campaigns that show them.
    let (callbacks_tx, callbacks_rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(
        dialerd::dialer::live::inbound::Callbacks {
            store: store.clone(),
            live: live.clone(),
            sip: sip.sip.clone(),
            media: media.clone(),
            log: call_log.clone(),
            metrics: live_metrics,
            access_number: cfg.lines.access_number.clone(),
        }
        .serve(callbacks_rx),
    );
    let supervisor = supervisor.with_trunks(
        sip.trunks.clone(),
        cfg.trunks.iter().map(|t| t.max_cps).sum(),
    );
    // Tracked: at the drain every campaign call is hung up and the dialers' state saved. Once
    // fenced, the drivers stop the same way, their writes refused by the fenced store.
    let dialling = shutdown.token().child_token();
    shutdown.spawn(supervisor.run(campaign_rx, dialling.clone()));
    tokio::spawn({
        let (fenced, health) = (node.fenced(), health.clone());
        async move {
            fenced.cancelled().await;
            health.set_fenced();
            dialling.cancel();
        }
    });
    // Tracked: at the drain every agent's leg is hung up.
    shutdown.spawn(agents.clone().run(shutdown.token()));
    let (access_tx, access_rx) = tokio::sync::mpsc::channel(64);
    let (login_tx, login_rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(dialerd::agents::login_call::serve(
        agents.clone(),
        store.clone(),
        sip.sip.clone(),
        login_rx,
    ));
    // Tracked: the drain waits for the last call records to be written.
    shutdown.spawn(call_writer);
    shutdown.spawn(
        lines
            .clone()
            .serve_access_calls(access_rx, Some(callbacks_tx.clone())),
    );
    shutdown.spawn(call::route_incoming(
        sip.sip.clone(),
        media,
        sip.incoming,
        call::Routes {
            echo_number: cfg.sip.echo_number.clone(),
            echo_max: cfg.sip.echo_max_duration,
            prompt_number: cfg.sip.prompt_number.clone(),
            test_prompt: cfg.media.test_prompt.clone(),
            relay_prefix: cfg.sip.relay_prefix.clone(),
            agent_test_number: cfg.sip.agent_test_number.clone(),
            record_relay: cfg.media.record_relay,
            access_number: cfg.lines.access_number.clone(),
            access: Some(access_tx),
            agent_login_number: cfg.sip.agent_login_number.clone(),
            agent_logins: Some(login_tx),
            callbacks: Some(callbacks_tx),
        },
        call_log,
    ));
    for addr in &sip.local_addrs {
        tracing::info!(%addr, "sip listening (udp, tcp)");
    }
    if let Some(first) = sip.local_addrs.first() {
        node.publish_sip_uri(cfg.node.sip_uri_for(*first)).await?;
    }
    for addr in &sip.tls_addrs {
        tracing::info!(%addr, "sip listening (tls)");
    }
    let sip_tls = sip.tls.clone();
    let http_tls = match (&cfg.http.tls_cert, &cfg.http.tls_key) {
        (Some(cert), Some(key)) => Some(std::sync::Arc::new(api::server::HttpTls::new(cert, key)?)),
        _ => None,
    };
    tracing::info!(addr = %http.local_addr()?, tls = http_tls.is_some(), "http listening");
    // The admin listener outlives the drain so /readyz can say 503 while work finishes.
    let http_stop = tokio_util::sync::CancellationToken::new();
    let http_done = api::server::spawn(
        http,
        api::router(api::AppState {
            metrics: metrics.clone(),
            health: health.clone(),
            trunks: sip.trunks.clone(),
            sip: sip.sip.clone(),
            store: store.clone(),
            api_metrics,
            lines,
            http: std::sync::Arc::new(cfg.http.clone()),
            logins: api::login_limit::LoginGuard::default(),
            sip_accounts: sip.accounts.clone(),
            agents,
            live,
        }),
        api::server::ConnLimits::from(&cfg.http),
        http_tls.clone(),
        http_stop.clone().cancelled_owned(),
    )?;

    health.set_ready(true);
    systemd::notify("READY=1");
    if let Some(every) = systemd::watchdog_interval() {
        let token = shutdown.token();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            while token.run_until_cancelled(tick.tick()).await.is_some() {
                systemd::notify("WATCHDOG=1");
            }
        });
    }
    // Task flow (moves, waits, webhooks, e-mails) stops with the drain, before the store closes.
    shutdown.spawn(dialerd::flow::run(
        store.clone(),
        flow_metrics,
        webhooks,
        mailer,
        shutdown.token(),
    ));
    // Drop folders stop with the drain too: an import under way finishes its batch.
    if !cfg.inbox.poll_interval.is_zero() {
        let dir = cfg
            .inbox
            .dir
            .clone()
            .unwrap_or_else(|| state_dir.join("inbox"));
        shutdown.spawn(dialerd::flow::inbox::run(
            store.clone(),
            dir,
            cfg.inbox.poll_interval,
            shutdown.token(),
        ));
    }
    tokio::spawn(memory::trim_periodically(
        memory::TRIM_INTERVAL,
        shutdown.token(),
    ));
    tracing::info!("dialerd ready");

    while signals.recv().await == Signal::Reload {
        cfg = reload(path, cfg, &log);
        reload_certificate(&cfg.sip, &sip_tls);
        reload_http_certificate(&cfg.http, http_tls.as_deref());
    }

    tracing::info!(drain_timeout = ?cfg.shutdown.drain_timeout, "shutting down: draining work in progress");
    health.set_ready(false);
    systemd::notify("STOPPING=1");
    match shutdown.drain(cfg.shutdown.drain_timeout).await {
        Drained::Clean => tracing::info!("drained"),
        Drained::TimedOut(n) => tracing::warn!(tasks = n, "drain timeout reached; abandoning work"),
    }
    http_stop.cancel();
    http_done.await??;
    node_stop.cancel();
    node_beat.await?;
    node.release().await;
    store.close().await;
    tracing::info!("dialerd stopped");
    Ok(())
}

/// Opens the database (`store.url`, else the SQLite file in the state directory); on an
/// empty store, creates the admin user.
async fn open_store(state_dir: &Path, cfg: &config::StoreConfig) -> anyhow::Result<Store> {
    let location = match cfg.url.expose() {
        "" => Location::Sqlite(state_dir.join(DB_FILE)),
        url => match Location::parse(url).map_err(|e| anyhow::anyhow!("store.url: {e}"))? {
            Location::Sqlite(path) => Location::Sqlite(state_dir.join(path)),
            postgres => postgres,
        },
    };
    let store = Store::open_at(&location, state_dir).await?;
    let env_token = std::env::var("DIALERD_ADMIN_TOKEN").ok();
    match store.ensure_admin(env_token.as_deref(), state_dir).await? {
        AdminBootstrap::Written(file) => {
            tracing::warn!(file = %file.display(), "created user admin; its API token is in this file")
        }
        AdminBootstrap::FromEnv => {
            tracing::info!("created user admin with the API token from DIALERD_ADMIN_TOKEN")
        }
        AdminBootstrap::Existing => {}
    }
    for name in store.normalise_user_names().await? {
        tracing::warn!(user = %name, "user name differs from another only in case or spaces, or has characters no longer allowed; it cannot log in by password until renamed (delete it and create it again)");
    }
    tracing::info!(store = %location, "store open");
    Ok(store)
}

/// SIGHUP: the TLS listeners' certificate and key are read again (a renewed certificate is
/// presented to new connections); on error the old one stays.
fn reload_certificate(sip: &config::SipConfig, tls: &sip::transport::TlsSettings) {
    let (Some(cert), Some(key)) = (&sip.tls_certificate, &sip.tls_private_key) else {
        return;
    };
    if sip.tls_listen.is_empty() {
        return;
    }
    match dialerd::tls::server_config(cert, key) {
        Ok(server) => {
            tls.set_server(server);
            tracing::info!(certificate = %cert.display(), "sip tls certificate reloaded");
        }
        Err(e) => {
            tracing::error!(error = %e, "sip tls certificate not reloaded; keeping the old one")
        }
    }
}

/// SIGHUP: the HTTPS certificate and key are read again; on error the old ones stay.
fn reload_http_certificate(http: &config::HttpConfig, tls: Option<&api::server::HttpTls>) {
    let (Some(tls), Some(cert), Some(key)) = (tls, &http.tls_cert, &http.tls_key) else {
        return;
    };
    match tls.reload(cert, key) {
        Ok(()) => tracing::info!(certificate = %cert.display(), "https certificate reloaded"),
        Err(e) => {
            tracing::error!(error = %e, "https certificate not reloaded; keeping the old one")
        }
    }
}

/// SIGHUP: apply what can change live, name what needs a restart, keep the old config on error.
fn reload(path: &Path, old: Config, log: &logging::LogHandle) -> Config {
    systemd::notify_reloading();
    let new = match config::load(path) {
        Ok(new) => new,
        Err(e) => {
            tracing::error!(error = %e, "reload failed; keeping the running configuration");
            systemd::notify("READY=1");
            return old;
        }
    };
    match log.set_level(&new.log.level) {
        Ok(true) => tracing::info!(level = %new.log.level, "log level applied"),
        Ok(false) => tracing::info!("RUST_LOG is set; it keeps the log level"),
        Err(e) => tracing::error!(error = %e, "cannot apply log level"),
    }
    for section in old.restart_needed(&new) {
        tracing::warn!(
            section,
            "changed in the config file; takes effect after a restart"
        );
    }
    tracing::info!("configuration reloaded");
    systemd::notify("READY=1");
    // Settings needing a restart keep their running values, so what we report stays true.
    Config {
        log: config::LogConfig {
            format: old.log.format,
            ..new.log
        },
        shutdown: new.shutdown,
        ..old
    }
}
