//! `just test` runs this first: it finds the EEPROM fixtures the tests compare against (or
//! fetches them by sha256) and prints their folder, or says in one message what is missing and
//! how to provide it, so a run without them stops before any test.

fn main() {
    match bramble::fetch::eeprom_fixtures::provide(&bramble::fetch::eeprom_fixtures::Sources::from_env()) {
        Ok(dir) => println!("{}", dir.display()),
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(1);
        }
    }
}
