//! The lab's HTTPS half: each real serves its page over TLS 1.3 with a certificate for its
//! name from the lab's test CA (scripts/lab.sh makes both), and clients that trust that CA
//! only (curl --cacert, python requests) reach it through its DIP: NAT (443 to 8443) and
//! same-address. The director forwards the TLS bytes untouched (L4).

use detour_e2e::{lab_config, Lab};

const CA: &str = "/tmp/detour-lab/tls/ca.pem";
const HTTPS_DIPS: &str = "dip 198.18.0.2:443 real 198.18.1.11:8443\ndip 198.18.0.3:443\n";

#[test]
fn curl_and_python_requests_get_each_reals_https_page_through_its_dip() {
    let lab = Lab::start(&lab_config(HTTPS_DIPS), 1);
    for (name, real) in [("real1.lab", "dt-real1"), ("real3.lab", "dt-real3")] {
        let url = format!("https://{name}/index.html");
        let r = lab.client(
            &[
                "curl",
                "-sS",
                "--max-time",
                "5",
                "--tlsv1.3",
                "--cacert",
                CA,
                &url,
            ],
            10,
        );
        assert!(
            r.ok() && r.stdout.contains(&format!("real server {real}<")),
            "{url}: {r:?}\n{}",
            lab.log_text()
        );
        let py = format!(
            "import requests; r = requests.get({url:?}, verify={CA:?}, timeout=5); print(r.status_code, r.text)"
        );
        let r = lab.client(&["python3", "-c", &py], 15);
        assert!(
            r.ok() && r.stdout.starts_with("200 ") && r.stdout.contains(real),
            "python requests {url}: {r:?}"
        );
        // Without the lab's CA the certificate is refused: the CA is what is trusted.
        let r = lab.client(&["curl", "-sS", "--max-time", "5", &url], 10);
        assert_eq!(r.code, Some(60), "curl without the CA: {r:?}");
    }
}
