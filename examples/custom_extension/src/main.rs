//! `custom_engine`: the `engine` command line with this crate's extensions.

fn main() -> std::process::ExitCode {
    custom_extension::engine().main()
}
