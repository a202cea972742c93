//! The server side of Telegram's SRP 2FA check (`account.getPassword` / `auth.checkPassword`),
//! verified for real: a client that does not know the password cannot produce a valid M1.
//! <https://core.telegram.org/api/srp>

use num_bigint::BigUint;
use sha2::{Digest, Sha256, Sha512};

/// Telegram's 2048-bit safe prime; with g = 3 it passes every client's checks.
pub const P_HEX: &str = "c71caeb9c6b1c9048e6c522f70f13f73980d40238e3e21c14934d037563d930f48198a0aa7c14058229493d22530f4dbfa336f6e0ac925139543aed44cce7c3720fd51f69458705ac68cd4fe6b6b13abdc9746512969328454f18faf8c595f642477fe96bb2a941d5bcd1d4ac8cc49880708fa9b378e3c4f3a9060bee67cf9a4a4a695811051907e162753b56b0f6b410dba74d8a84b2a14b3144e0ef1284754fd17ed950d5965b4b9dd46582db1178d169c6bc465b0d6ff9ca3928fef5b9ae4e418fc15e83ebea0f87fa9ff5eed70050ded2849f47bf959d956850ce929851f0d8115f635b105ee2e4e15d04b2454bf6f4fadf034b10403119cd8e3b92fcc5b";
pub const G: i32 = 3;

fn h(parts: &[&[u8]]) -> [u8; 32] {
    let mut d = Sha256::new();
    for p in parts {
        d.update(p);
    }
    d.finalize().into()
}

fn pad256(b: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; 256usize.saturating_sub(b.len())];
    v.extend_from_slice(b);
    v
}

pub fn p_bytes() -> Vec<u8> {
    hex::decode(P_HEX).unwrap_or_default()
}

/// PH2(password, salt1, salt2) as Telegram defines it.
pub fn ph2(password: &[u8], salt1: &[u8], salt2: &[u8]) -> [u8; 32] {
    let sh = |data: &[u8], salt: &[u8]| h(&[salt, data, salt]);
    let ph1 = sh(&sh(password, salt1), salt2);
    let mut out = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(&ph1, salt1, 100_000, &mut out);
    sh(&out, salt2)
}

/// One `account.getPassword` answer and what is needed to check the reply to it.
pub struct Challenge {
    pub srp_id: i64,
    pub salt1: Vec<u8>,
    pub salt2: Vec<u8>,
    /// g_b, 256 bytes.
    pub srp_b: Vec<u8>,
    b: BigUint,
    v: BigUint,
}

impl Challenge {
    pub fn new(password: &str) -> Challenge {
        let p = BigUint::from_bytes_be(&p_bytes());
        let g = BigUint::from(G as u32);
        let salt1: Vec<u8> = (0..40).map(|_| rand::random::<u8>()).collect();
        let salt2: Vec<u8> = (0..16).map(|_| rand::random::<u8>()).collect();
        let x = BigUint::from_bytes_be(&ph2(password.as_bytes(), &salt1, &salt2));
        let v = g.modpow(&x, &p);
        let k = BigUint::from_bytes_be(&h(&[&p_bytes(), &pad256(&[G as u8])]));
        let b_bytes: Vec<u8> = (0..256).map(|_| rand::random::<u8>()).collect();
        let b = BigUint::from_bytes_be(&b_bytes) % &p;
        let g_b = (k * &v + g.modpow(&b, &p)) % &p;
        Challenge {
            srp_id: rand::random::<i64>(),
            salt1,
            salt2,
            srp_b: pad256(&g_b.to_bytes_be()),
            b,
            v,
        }
    }

    /// Whether `m1` proves knowledge of the password for the client's `a` (g_a).
    pub fn verify(&self, g_a: &[u8], m1: &[u8]) -> bool {
        let p_raw = p_bytes();
        let p = BigUint::from_bytes_be(&p_raw);
        let a = BigUint::from_bytes_be(g_a);
        if a == BigUint::from(0u8) || a >= p {
            return false;
        }
        let g_a = pad256(g_a);
        let u = BigUint::from_bytes_be(&h(&[&g_a, &self.srp_b]));
        let s = (a * self.v.modpow(&u, &p)).modpow(&self.b, &p);
        let k = h(&[&pad256(&s.to_bytes_be())]);
        let hp = h(&[&p_raw]);
        let hg = h(&[&pad256(&[G as u8])]);
        let xor: Vec<u8> = hp.iter().zip(hg.iter()).map(|(a, b)| a ^ b).collect();
        let expected = h(&[
            &xor,
            &h(&[&self.salt1]),
            &h(&[&self.salt2]),
            &g_a,
            &self.srp_b,
            &k,
        ]);
        expected.as_slice() == m1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammers_client_math_passes_and_a_wrong_password_fails() {
        let c = Challenge::new("hunter2");
        let a: Vec<u8> = (0..256).map(|_| rand::random::<u8>()).collect();
        let (m1, g_a) = grammers_crypto::two_factor_auth::calculate_2fa(
            &c.salt1,
            &c.salt2,
            &p_bytes(),
            &G,
            c.srp_b.clone(),
            a.clone(),
            "hunter2",
        );
        assert!(c.verify(&g_a, &m1));
        let (m1, g_a) = grammers_crypto::two_factor_auth::calculate_2fa(
            &c.salt1,
            &c.salt2,
            &p_bytes(),
            &G,
            c.srp_b.clone(),
            a,
            "hunter3",
        );
        assert!(!c.verify(&g_a, &m1));
    }
}
