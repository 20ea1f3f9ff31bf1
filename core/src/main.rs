//! The `rrpipe` command.

fn main() {
    let result = rrpipe::cli::parse(std::env::args_os().collect()).and_then(rrpipe::run);
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("rrpipe: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
