//! Helpers shared by the test modules.

use std::time::Duration;

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("reqwest client builds")
}
