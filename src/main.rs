fn main() -> std::process::ExitCode {
    reviews_api::cli::main()
}
