fn main() -> std::process::ExitCode {
    bramble::cli::main()
}
