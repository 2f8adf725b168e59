//! A realistic, seeded set of platform users for the demo: individuals and legal entities with
//! Russian names, phones in the forms people type, valid INN/KPP (check digits computed), and a
//! few deliberately invalid INNs or e-mails.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const MALE_FIRST: &[&str] = &[
    "Александр",
    "Дмитрий",
    "Максим",
    "Сергей",
    "Андрей",
    "Алексей",
    "Артём",
    "Илья",
    "Кирилл",
    "Михаил",
    "Никита",
    "Матвей",
    "Роман",
    "Егор",
    "Иван",
    "Павел",
    "Фёдор",
    "Юрий",
];
const FEMALE_FIRST: &[&str] = &[
    "Анна",
    "Мария",
    "Елена",
    "Ольга",
    "Наталья",
    "Татьяна",
    "Ирина",
    "Екатерина",
    "Светлана",
    "Юлия",
    "Дарья",
    "Алёна",
    "Ксения",
    "Полина",
    "Вера",
    "Людмила",
];
/// Male form; the female form adds `а` (Иванов → Иванова), which holds for these names.
const LAST: &[&str] = &[
    "Иванов",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Васильев",
    "Петров",
    "Соколов",
    "Михайлов",
    "Новиков",
    "Фёдоров",
    "Морозов",
    "Волков",
    "Алексеев",
    "Лебедев",
    "Семёнов",
    "Егоров",
    "Павлов",
    "Козлов",
    "Степанов",
    "Николаев",
    "Орлов",
    "Андреев",
    "Макаров",
    "Никитин",
];
const COMPANY_FORMS: &[&str] = &["ООО", "АО", "ПАО", "ООО", "ООО"];
const COMPANY_WORDS: &[&str] = &[
    "Ромашка",
    "Северный ветер",
    "Техностиль",
    "Уральские самоцветы",
    "Волга-Трейд",
    "Байкал",
    "СтройМонтаж",
    "Кедр",
    "Полярная звезда",
    "Сибирский тракт",
    "Альфа-Логистик",
    "Заря",
    "Русский лён",
    "Медведь",
    "Гранит",
    "Ладога",
];
const MOBILE_CODES: &[&str] = &[
    "903", "905", "909", "912", "915", "916", "917", "920", "921", "925", "926", "950", "977",
    "985", "999",
];
const MAIL_DOMAINS: &[&str] = &["example.ru", "example.com", "mail.example", "example.org"];
/// FNS tax office codes (the first four digits of a KPP, the region prefix of an INN).
const TAX_OFFICES: &[&str] = &[
    "7701", "7707", "7729", "7804", "5001", "6658", "5406", "1655",
];

const W10: [u32; 9] = [2, 4, 10, 3, 5, 9, 4, 6, 8];
const W11: [u32; 10] = [7, 2, 4, 10, 3, 5, 9, 4, 6, 8];
const W12: [u32; 11] = [3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8];

/// What the demo expects for a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Valid,
    /// Deliberately invalid; the export must fail permanently on this field.
    Invalid(&'static str),
}

/// One generated user: the row the platform writes (as JSON) and what should happen to it.
#[derive(Debug, Clone)]
pub struct GeneratedUser {
    pub id: String,
    pub row: Value,
    pub legal_entity: bool,
    pub expect: Expect,
}

fn check(digits: &[u32], weights: &[u32]) -> u32 {
    digits.iter().zip(weights).map(|(d, w)| d * w).sum::<u32>() % 11 % 10
}

fn digits_of(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

fn to_string(digits: &[u32]) -> String {
    digits
        .iter()
        .filter_map(|d| char::from_digit(*d, 10))
        .collect()
}

/// A legal entity's INN: tax office, five random digits, check digit.
pub fn legal_inn(rng: &mut impl Rng, office: &str) -> String {
    let mut digits = digits_of(office);
    digits.extend((0..5).map(|_| rng.random_range(0..10)));
    digits.push(check(&digits, &W10));
    to_string(&digits)
}

/// An individual's INN: tax office, six random digits, two check digits.
pub fn individual_inn(rng: &mut impl Rng, office: &str) -> String {
    let mut digits = digits_of(office);
    digits.extend((0..6).map(|_| rng.random_range(0..10)));
    digits.push(check(&digits, &W11));
    digits.push(check(&digits, &W12));
    to_string(&digits)
}

/// The same INN with its last check digit wrong.
pub fn break_checksum(inn: &str) -> String {
    let mut digits = digits_of(inn);
    if let Some(last) = digits.last_mut() {
        *last = (*last + 1) % 10;
    }
    to_string(&digits)
}

/// A KPP: tax office, reason `01`, serial.
pub fn kpp(rng: &mut impl Rng, office: &str) -> String {
    format!("{office}01{:03}", rng.random_range(1..=999))
}

/// A Russian mobile number in one of the forms people type.
pub fn phone(rng: &mut impl Rng) -> String {
    let code = MOBILE_CODES[rng.random_range(0..MOBILE_CODES.len())];
    let a = rng.random_range(100..1000);
    let b = rng.random_range(10..100);
    let c = rng.random_range(10..100);
    match rng.random_range(0..6) {
        0 => format!("8 ({code}) {a}-{b}-{c}"),
        1 => format!("+7 {code} {a} {b} {c}"),
        2 => format!("{code}{a}{b}{c}"),
        3 => format!("+7({code}){a}-{b}-{c}"),
        4 => format!("8-{code}-{a}-{b}-{c}"),
        _ => format!("+7{code}{a}{b}{c}"),
    }
}

fn translit(s: &str) -> String {
    let mut out = String::new();
    for c in s.to_lowercase().chars() {
        let t = match c {
            'а' => "a",
            'б' => "b",
            'в' => "v",
            'г' => "g",
            'д' => "d",
            'е' => "e",
            'ё' => "e",
            'ж' => "zh",
            'з' => "z",
            'и' => "i",
            'й' => "y",
            'к' => "k",
            'л' => "l",
            'м' => "m",
            'н' => "n",
            'о' => "o",
            'п' => "p",
            'р' => "r",
            'с' => "s",
            'т' => "t",
            'у' => "u",
            'ф' => "f",
            'х' => "kh",
            'ц' => "ts",
            'ч' => "ch",
            'ш' => "sh",
            'щ' => "shch",
            'ы' => "y",
            'э' => "e",
            'ю' => "yu",
            'я' => "ya",
            'ь' | 'ъ' => "",
            c if c.is_ascii_alphanumeric() => {
                out.push(c);
                continue;
            }
            _ => "-",
        };
        out.push_str(t);
    }
    out.trim_matches('-').to_owned()
}

fn pick<'a>(rng: &mut impl Rng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn weighted<'a>(rng: &mut impl Rng, items: &[(&'a str, u32)]) -> &'a str {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut roll = rng.random_range(0..total.max(1));
    for (item, weight) in items {
        if roll < *weight {
            return item;
        }
        roll -= weight;
    }
    items.first().map_or("", |(item, _)| item)
}

/// A person's first and last name (matching gender).
pub fn person(rng: &mut impl Rng) -> (String, String) {
    let female = rng.random_bool(0.5);
    let first = pick(rng, if female { FEMALE_FIRST } else { MALE_FIRST });
    let last = pick(rng, LAST);
    let last = if female {
        format!("{last}а")
    } else {
        last.to_owned()
    };
    (first.to_owned(), last)
}

/// `count` users from `seed`; about `invalid_share` of them invalid (at least one when `count`
/// is 10 or more), alternating a broken INN checksum and a broken e-mail.
pub fn generate(count: usize, seed: u64, invalid_share: f64) -> Vec<GeneratedUser> {
    let mut rng = StdRng::seed_from_u64(seed);
    let invalid_every = if invalid_share > 0.0 {
        ((1.0 / invalid_share).round() as usize).max(2)
    } else {
        usize::MAX
    };
    let mut invalid_made = 0usize;
    (0..count)
        .map(|n| {
            let id = uuid::Builder::from_random_bytes(rng.random())
                .into_uuid()
                .to_string();
            let legal = rng.random_bool(0.3);
            let (first, last) = person(&mut rng);
            let office = pick(&mut rng, TAX_OFFICES);
            let domain = pick(&mut rng, MAIL_DOMAINS);
            let mut email = format!("{}.{}{}@{domain}", translit(&first), translit(&last), n);
            let role = weighted(
                &mut rng,
                &[
                    ("retail", 60),
                    ("wholesale", 25),
                    ("vip", 10),
                    ("partner", 5),
                ],
            );
            let status = weighted(&mut rng, &[("active", 90), ("inactive", 5), ("blocked", 5)]);
            let mut row = json!({
                "id": id,
                "email": email,
                "first_name": first,
                "last_name": last,
                "role": role,
                "status": status,
                "version": 1,
                "created_at": chrono::Utc::now().to_rfc3339(),
                "marketing_opt_in": rng.random_bool(0.4),
            });
            // Some individuals leave the phone empty; some give an INN (12 digits).
            if legal || rng.random_bool(0.85) {
                row["phone"] = json!(phone(&mut rng));
            }
            let mut inn = None;
            if legal {
                let company = format!(
                    "{} «{}»",
                    pick(&mut rng, COMPANY_FORMS),
                    pick(&mut rng, COMPANY_WORDS)
                );
                row["company_name"] = json!(company);
                inn = Some(legal_inn(&mut rng, office));
                row["kpp"] = json!(kpp(&mut rng, office));
            } else if rng.random_bool(0.5) {
                inn = Some(individual_inn(&mut rng, office));
            }
            let make_invalid =
                invalid_every != usize::MAX && n % invalid_every == invalid_every / 2;
            let mut expect = Expect::Valid;
            if make_invalid {
                invalid_made += 1;
                if invalid_made % 2 == 1 {
                    let valid = inn
                        .take()
                        .unwrap_or_else(|| individual_inn(&mut rng, office));
                    inn = Some(break_checksum(&valid));
                    expect = Expect::Invalid("tax_id");
                } else {
                    email = email.replace('@', ".");
                    row["email"] = json!(email);
                    expect = Expect::Invalid("email");
                }
            }
            if let Some(inn) = inn {
                row["tax_id"] = json!(inn);
            }
            GeneratedUser {
                id,
                row,
                legal_entity: legal,
                expect,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::{Email, Inn, Kpp, Phone};

    #[test]
    fn generated_tax_ids_and_phones_pass_the_domain_checks_and_broken_ones_fail() {
        // Given a seeded generator
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200 {
            // When INNs, KPPs and phones are generated
            let legal = legal_inn(&mut rng, "7707");
            let person = individual_inn(&mut rng, "5001");
            // Then they are valid, and a broken check digit is not
            assert!(Inn::parse(&legal).is_ok_and(|i| i.is_legal_entity()));
            assert!(Inn::parse(&person).is_ok_and(|i| !i.is_legal_entity()));
            assert!(Inn::parse(&break_checksum(&legal)).is_err());
            assert!(Kpp::parse(&kpp(&mut rng, "7707")).is_ok());
            let typed = phone(&mut rng);
            assert!(Phone::parse(&typed).is_ok(), "phone form {typed:?}");
        }
    }

    #[test]
    fn about_five_percent_are_invalid_and_the_rest_have_valid_emails() {
        // When 300 users are generated
        let users = generate(300, 42, 0.05);
        // Then 15 are invalid, split between INN and e-mail
        let invalid: Vec<_> = users.iter().filter(|u| u.expect != Expect::Valid).collect();
        assert_eq!(invalid.len(), 15);
        assert!(invalid
            .iter()
            .any(|u| u.expect == Expect::Invalid("tax_id")));
        assert!(invalid.iter().any(|u| u.expect == Expect::Invalid("email")));
        // And every valid user's e-mail parses
        for user in users.iter().filter(|u| u.expect == Expect::Valid) {
            let email = user.row["email"].as_str().unwrap_or_default();
            assert!(Email::parse(email).is_ok());
        }
        // And the same seed gives the same users
        assert_eq!(
            generate(300, 42, 0.05)[17].row["email"],
            users[17].row["email"]
        );
    }
}
