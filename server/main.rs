//! The `herold` binary: parses the command line, sets up logging, and runs
//! the server or a one-shot command.

use clap::Parser;
use herold::cli::{Cli, Command};
use herold::{AppState, Clock, Config};

fn init_logging(filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi).try_init();
}

/// One-shot commands log to stderr: their stdout is the answer (`vapid show`
/// is piped into other tools) and must not carry log lines.
fn init_command_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command.as_ref().unwrap_or(&Command::Serve) {
        Command::Serve => serve(&cli),
        command => {
            init_command_logging();
            herold::cli::run(&cli, command)
        }
    };
    if let Err(e) = result {
        eprintln!("herold: {e:#}");
        std::process::exit(1);
    }
}

fn serve(cli: &Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    init_logging(&config.log);
    let listen = config.listen;
    let backend = if config.backend.is_postgres() { "PostgreSQL" } else { "SQLite" };
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    actix_web::rt::System::new().block_on(async move {
        let state = actix_web::web::block(move || AppState::open(config, Clock::system()))
            .await?
            .map_err(|e| anyhow::anyhow!(e))?;
        tracing::info!(%listen, backend, vapid_public_key = state.keys.vapid.public_key(), "herold serving");
        let engine = herold::delivery::Delivery::new(state.clone(), state.config.delivery.clone())
            .map_err(|e| anyhow::anyhow!(e))?;
        let delivery = herold::delivery::DeliveryHandle::start(engine, state.config.delivery_workers)
            .map_err(|e| anyhow::anyhow!(e))?;
        let server = actix_web::HttpServer::new(move || herold::app(state.clone()))
            .workers(workers)
            .shutdown_timeout(20)
            .bind(listen)
            .map_err(|e| anyhow::anyhow!("HEROLD_LISTEN: cannot bind {listen}: {e}"))?;
        let served = server.run().await;
        // After the HTTP server stopped (SIGTERM/SIGINT): let the batches in
        // flight finish and record; unfinished work stays in the database.
        actix_web::web::block(move || delivery.shutdown()).await?;
        tracing::info!("herold stopped");
        served?;
        Ok(())
    })
}
