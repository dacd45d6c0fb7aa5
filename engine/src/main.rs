//! The `engine` binary: the command line with the built-in extensions only. A binary
//! with its own runs `engine::Engine::builder().register_…().main()` instead.

fn main() -> std::process::ExitCode {
    engine::Engine::builder().main()
}
