#!/usr/bin/env bash
# The bapp demo: a fresh SQLite database driven exactly as staff, cron and scripts would drive it.
# Run it with `make demo` (which puts .venv/bin on PATH first). Each step prints the command it runs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
demo_dir="$root/.demo"
rm -rf "$demo_dir"
mkdir -p "$demo_dir"

export BAPP_DATABASE_URL="sqlite:///$demo_dir/bapp.db"
export BAPP_CONFIG="$demo_dir/config.toml"
export BAPP_ACTOR="demo"
export COLUMNS="${COLUMNS:-140}"
unset BAPP_FORMAT DATABASE_URL CALENDLY_API_KEY 2>/dev/null || true
# The first part books in bapp only (there is no Calendly to talk to); the last part serves a fake Calendly
# and books through it (bookings.calendly = auto, the default).
export BAPP_BOOKINGS_CALENDLY=never

step() { printf '\n\033[1;36m== %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }
# run a command that is expected to fail, and show its exit code
refused() {
  printf '\033[2m$ %s\033[0m\n' "$*"
  set +e; "$@"; local code=$?; set -e
  printf '\033[33m→ exit %s\033[0m\n' "$code"
}

step "A new database: commands refuse to run until it is migrated (exit 5)"
refused bapp pathways list
show bapp db upgrade
show bapp db current

step "The three default pathways and their tiers"
show bapp pathways list --format table
show bapp pathways show accelerate --format table

step "Scripts get stable JSON and TSV"
show bapp pathways show pivot --json
bapp pathways list --format tsv | cut -f1,2,6 | sed 's/^/    /'

# ---- skills, progress and badges (issue 5) ---------------------------------------------------------
step "Load the skill catalogue: ~14 skills per pathway across three tiers, five fundamentals"
show bapp import all "$here/catalog.toml" --format table
show bapp skills list --pathway accelerate --format table
show bapp skills list --fundamental --format tsv

step "A coach and three clients, enrolled"
bapp --quiet builders add priya@coach.example --name "Priya Shah" --format tsv >/dev/null
for who in "maya@client.example:Maya Patel" "leo@client.example:Leo Martin" "sam@client.example:Sam Okafor"; do
  bapp --quiet clients add "${who%%:*}" --name "${who#*:}" --format tsv >/dev/null
done
show bapp clients enroll maya@client.example accelerate --builder priya@coach.example --format tsv

step "Assign skills (idempotent), start and complete them; badges arrive as criteria are met"
show bapp skills assign maya@client.example --pathway accelerate --format table
for skill in ai-literacy prompt-fundamentals data-privacy ai-tool-landscape; do
  bapp --quiet skills complete maya@client.example "$skill" --format tsv >/dev/null
done
show bapp skills complete maya@client.example workflow-mapping --validated-by priya@coach.example --json
show bapp skills start maya@client.example prompt-engineering --format tsv
for skill in responsible-ai critical-evaluation; do
  bapp --quiet skills complete maya@client.example "$skill" --via assessment --format tsv >/dev/null
done
# a whole pathway in one go: assigning under it enrols Leo, completes the enrolment and awards every badge
show bapp skills assign leo@client.example --pathway play --status completed --via assessment --json
show bapp skills assign sam@client.example --pathway pivot --tier 1 --status completed --format tsv
show bapp skills start sam@client.example portfolio-project --format tsv
refused bapp skills reset sam@client.example skills-audit

step "Maya's progress tree, and the progress table staff look at every day"
show bapp progress show maya@client.example --format table
show bapp progress table --format table
show bapp progress table --pathway play --json
show bapp badges list maya@client.example --format table

# ---- Calendly event-type sync and the session catalogue (issue 3) ---------------------------------------
# The sync normally calls the Calendly API (CALENDLY_API_KEY); the demo applies a saved listing through the
# same path. examples/config.toml holds [[calendly.rules]] that classify new event types.
calendly_config="$here/config.toml"
listing="$here/calendly/event_types.json"

step "Link Priya to her Calendly user, so her event types get her as builder"
show bapp builders update priya@coach.example --calendly-user https://api.calendly.com/users/BAWPRIYA0001 --format tsv

step "Preview a sync: one line per change on stderr, nothing written"
show bapp --config "$calendly_config" calendly sync --from-file "$listing" --dry-run --json

step "Sync (what cron runs every few minutes: silent on stderr, a summary on stdout)"
show bapp --config "$calendly_config" calendly sync --from-file "$listing" --format tsv
step "Run it again: everything unchanged, no row written"
show bapp --config "$calendly_config" calendly sync --from-file "$listing" --json

step "The session catalogue, grouped by category (--all includes the paused Automation Clinic)"
show bapp sessions list --all --format table
show bapp sessions show agent-build-sprint --format table

step "Curate locally: price, order, pathways — a later sync never overwrites these"
show bapp sessions update rag-architecture-review --price 120 --display-order 1 --format tsv
show bapp sessions add --title "Office Hours" --duration 30 --category free --builder priya@coach.example --format tsv
show bapp --config "$calendly_config" calendly sync --from-file "$listing" --format tsv
show bapp sessions list --category specialized --format table

step "An empty listing would make every synced session unbookable: refused (exit 8) unless --allow-empty"
refused bash -c "echo '[]' | bapp calendly sync --from-file - --format tsv"
show bapp calendly status --format table

# ---- clients, availability and bookings (issue 4) -------------------------------------------------
step "What someone without an account may book, and what a client with an account sees"
show bapp clients add nina@client.example --name "Nina Kowalski" --company "Kowalski Bakery" --format tsv
show bapp sessions available --format table
show bapp sessions available --client nina@client.example --pathway accelerate --format table

step "A free session needs no account: booking one creates it (a naive time is read in --timezone)"
show bapp bookings create --client tom@visitor.example --name "Tom Reed" --session getting-started-free-intro \
  --start 2031-03-31T10:00 --timezone Europe/London \
  --answer "What brings you to BuildAppsWith?=Curious about agents" --answer "Which best describes you?=Founder" --json

step "A pathway session: every rule is checked first and the error says what to fix (exit 6)"
show bash -c "bapp sessions update accelerate-foundation-coaching --price 45 --format tsv | cut -f2,12,13"
refused bapp bookings create --client walk.in@visitor.example --session accelerate-foundation-coaching \
  --start 2031-04-01T14:00 --answer "Company name=Walk-in Ltd"
refused bapp bookings create --client nina@client.example --session accelerate-foundation-coaching \
  --start 2031-04-01T14:00 --answer "Company name=Kowalski Bakery"
refused bapp bookings create --client nina@client.example --session accelerate-foundation-coaching \
  --start 2031-04-01T14:00 --pathway accelerate --answer "Company name=Kowalski Bakery" --answer "Budget=£500"

step "Booked with custom answers (multi-select repeats the question); the booking enrols Nina in Accelerate"
nina_booking=(bookings create --client nina@client.example --session accelerate-foundation-coaching
  --start 2031-04-01T14:00 --timezone Europe/London --duration 90 --pathway accelerate
  --answer "Company name=Kowalski Bakery" --answer "What are you building?=An ordering assistant"
  --answer "AI tools you use today=ChatGPT" --answer "ai tools you use today=zapier" --idempotency-key demo-nina-1)
show bapp "${nina_booking[@]}" --json
show bapp clients show nina@client.example --format table

step "Retrying with the same idempotency key returns the same booking; Priya's overlapping slot is refused (exit 8)"
printf '\033[2m$ bapp %s --format tsv | cut -f1,11,12,24-26\033[0m\n' "${nina_booking[*]}"
bapp "${nina_booking[@]}" --format tsv | cut -f1,11,12,24-26
show bapp builders update priya@coach.example --buffer 15 --format tsv
refused bapp bookings create --client tom@visitor.example --session rag-architecture-review \
  --start 2031-04-01T15:40 --timezone Europe/London \
  --answer "Repository or design doc link=https://example.com/rag" --answer "Scale=Prototype"

step "Status moves follow the state machine: confirm with payment; completing before the start is refused"
nina_ref="$(bapp bookings list --client nina@client.example --format tsv | awk -F'\t' 'NR==2 {print $1}')"
show bapp bookings confirm "$nina_ref" --paid --format tsv
refused bapp bookings complete "$nina_ref"
show bapp --timezone Europe/London bookings list --from 2031-03-01 --format table

# ---- builder dashboard: reports (issue 6) ---------------------------------------------------------
# book … prints only the new booking's reference, so later steps can move it through its states
book() { bapp bookings create "$@" --format tsv | awk -F'\t' 'NR==2 {print $1}'; }

step "More bookings for the dashboard: Sam's past Pivot sessions (backfilled), Leo's Play lab, Maya's cancelled deep dive"
sam_assessment="$(book --client sam@client.example --session pivot-career-assessment --allow-past \
  --start 2025-09-02T10:00 --timezone Europe/London --answer "Current role=Operations lead" --answer "Target direction=Product")"
sam_planning="$(book --client sam@client.example --session pivot-transition-planning --allow-past \
  --start 2025-10-07T10:00 --timezone Europe/London --duration 45 --answer "Your timeline=3-6 months")"
leo_lab="$(book --client leo@client.example --session play-creative-lab --pathway play --start 2031-04-03T11:00 \
  --timezone Europe/London --answer "What would you love to make?=A music video for my band" \
  --answer "Mediums you enjoy=Music" --answer "Mediums you enjoy=Video")"
maya_deep_dive="$(book --client maya@client.example --session accelerate-mastery-deep-dive --start 2031-04-08T09:00 \
  --timezone Europe/London --answer "Link to what you've built so far=https://example.com/maya" \
  --answer "Where are you stuck?=Evaluating agent output")"
echo "    booked $sam_assessment $sam_planning $leo_lab $maya_deep_dive"
show bapp bookings complete "$sam_assessment" --format tsv
show bapp bookings no-show "$sam_planning" --format tsv
show bapp bookings cancel "$maya_deep_dive" --reason "Moved to May" --format tsv

step "Bookings by pathway: counts per status with bars (the last row is the totals; scripts get pathway null)"
show bapp reports bookings-by-pathway --format table
show bapp reports bookings-by-pathway --from 2031-01-01 --format tsv

step "The same period as a listing grouped by pathway: time (in --timezone), client, session, status, category, answers"
show bapp --timezone Europe/London reports bookings-by-pathway --list --from 2031-01-01 --format table

step "Client progress: done/total and % per tier and overall, badges, last activity (CSV for spreadsheets)"
show bapp reports client-progress --format table
show bapp reports client-progress --pathway pivot --format csv

step "Pathway analytics: every figure is defined in --help and computed in the database; the period applies to bookings"
show bapp reports pathway-analytics --format table
show bapp reports pathway-analytics --from 2031-01-01 --to 2031-07-01 --no-totals --format tsv
refused bapp reports pathway-analytics --from 2031-07-01 --to 2031-01-01

# ---- bookings from Calendly: the cron pull and webhooks through a relay (issue 9) -------------------------
# The pull normally lists scheduled events and their invitees from the Calendly API; the demo applies a saved
# listing through the same path. Webhook deliveries are verified with CALENDLY_WEBHOOK_SIGNING_KEY before
# anything is parsed; the demo uses a throwaway key and `bapp calendly webhook sign` to play Calendly's part.
bookings_listing="$here/calendly/scheduled_events.json"
created_hook="$here/calendly/webhook_invitee_created.json"
canceled_hook="$here/calendly/webhook_invitee_canceled.json"

step "Preview a pull of Calendly bookings: one line per change on stderr (an event type never synced: exit 3)"
refused bapp calendly pull-bookings --from-file "$bookings_listing" --dry-run --json

step "Pull (what cron runs), then again: every invitee unchanged; the one of a type never synced is parked, named, exit 3"
refused bapp calendly pull-bookings --from-file "$bookings_listing" --format tsv
refused bapp calendly pull-bookings --from-file "$bookings_listing" --json
show bapp calendly webhook list --pending --format table
show bapp calendly status --limit 3 --format table

step "Calendly bookings beside the ones made here: accounts created, pathways from the booking form, Stripe payments"
show bapp --timezone Europe/London bookings list --from 2031-05-01 --format table
nina_calendly="$(bapp bookings list --client nina@client.example --from 2031-05-01 --format tsv | awk -F'\t' 'NR==2 {print $1}')"
show bapp bookings show "$nina_calendly" --format table
show bapp clients show olivia.grant@client.example --format table

step "Webhooks from a relay: an unsigned or forged delivery is refused (exit 4) and nothing is applied"
export CALENDLY_WEBHOOK_SIGNING_KEY="demo-signing-key-not-a-secret"
refused bapp calendly webhook apply "$created_hook"
refused bapp calendly webhook apply "$created_hook" --signature "t=$(date +%s),v1=$(printf '0%.0s' {1..64})"

step "Sam reschedules: Calendly sends both halves, and here the new one arrives first"
created_sig="$(bapp calendly webhook sign "$created_hook")"
show bapp calendly webhook apply "$created_hook" --signature "$created_sig" --json
step "Calendly retries a delivery until it gets a 2xx: the replay changes nothing; the old half then finds its work done"
show bapp calendly webhook apply "$created_hook" --signature "$created_sig" --format tsv
show bapp calendly webhook apply "$canceled_hook" --signature "$(bapp calendly webhook sign "$canceled_hook")" --json
show bapp --timezone Europe/London bookings list --client sam@client.example --from 2031-05-01 --format table
unset CALENDLY_WEBHOOK_SIGNING_KEY

# ---- bulk import and export (issue 7) -------------------------------------------------------------------
step "Load clients from a CSV: new ones created, Maya's company filled in; running it again changes nothing"
show bapp import clients "$here/clients.csv" --format table
show bapp import clients "$here/clients.csv" --json

step "Backfill last year's bookings: every row checked as \`bookings create\` checks it, all in one transaction"
show bapp import bookings "$here/bookings.csv" --dry-run --json
show bapp import bookings "$here/bookings.csv" --format table
show bapp --timezone Europe/London bookings list --client ava.chen@client.example --format table

step "Listings page and search in the database; a bad option value is a usage error naming it (exit 2)"
show bapp clients list --search chen --limit 5 --format tsv
show bapp bookings list --search ava --limit 2 --offset 1 --format tsv
refused bapp bookings list --limit -1

step "A file with bad rows is refused whole (exit 6): every bad row named by line and field, nothing written"
bad_bookings="$demo_dir/bad-bookings.csv"
cat > "$bad_bookings" <<'CSV'
client,session,start_time,status,client_timezone,pathway,amount
zoe@client.example,free-discovery-call,2030-12-10T10:00,completed,Europe/London,,0.00
not-an-email,free-discovery-call,2030-12-11T10:00,completed,Europe/London,,0.00
zoe@client.example,tea-and-biscuits,2030-12-12T10:00,completed,Europe/London,,0.00
zoe@client.example,free-discovery-call,2030-02-30T10:00,completed,Europe/London,,0.00
zoe@client.example,free-discovery-call,2030-12-13T10:00,completed,Mars/Olympus,,0.00
CSV
refused bapp import bookings "$bad_bookings"

step "Or keep the good rows and set the bad ones aside (exit 3): the rejects file is the input plus an error column"
refused bapp import bookings "$bad_bookings" --continue-on-error --rejects "$demo_dir/rejected.csv" --format tsv
show cat "$demo_dir/rejected.csv"

step "Export any kind for analysis, in CSV, TSV, JSON, JSONL or TOML"
show bash -c "bapp export bookings --format csv | cut -d, -f2,3,10,13 | head -5"
show bapp export skills -o "$demo_dir/skills.toml"
show head -12 "$demo_dir/skills.toml"

step "A full backup restores exactly into an empty database (the same commands move SQLite to PostgreSQL)"
show bapp export all -o "$demo_dir/backup.json"
restored_url="sqlite:///$demo_dir/restored.db"
show bapp --database-url "$restored_url" db upgrade
show bapp --database-url "$restored_url" import all "$demo_dir/backup.json" --format table
show bash -c "bapp --database-url '$restored_url' export all | cmp - '$demo_dir/backup.json' && echo 'identical exports'"

# ---- portable badges: signed Open Badges 3.0 credentials (issue 17) -------------------------------------
step "Create the Open Badges issuer: an Ed25519 key (0600 file, never printed) and the Profile to publish"
show bapp badges issuer init --name BuildAppsWith --url https://buildappswith.com --key-file "$demo_dir/badge-signing-key.pem"
show stat -c '%a %n' "$demo_dir/badge-signing-key.pem"
show bapp badges issuer show

step "Export Maya's badges as signed credentials (VC-JWT, EdDSA); her e-mail appears only as a salted hash"
show bapp badges export maya@client.example -o "$demo_dir/maya.jwt"
show bash -c "bapp badges export maya@client.example --badge fundamentals --format json | head -40"
show bash -c "grep -c maya@client.example '$demo_dir/maya.jwt' || echo 'no e-mail in the credentials'"

step "Verify them: signature, OB 3.0 shape, dates, and that each badge still stands in this database"
show bapp badges verify "$demo_dir/maya.jwt" --against-db --format table
tampered="$demo_dir/tampered.jwt"
head -1 "$demo_dir/maya.jwt" | sed 's/\.\([A-Za-z0-9_-]\)\([A-Za-z0-9_-]*\)$/.A\2/; s/\.A\([A-Za-z0-9_-]*\)$/.B\1/' >"$tampered"
refused bapp badges verify "$tampered"

step "Revoke one (audited); verify reports it, and the status list carries it to verifiers elsewhere"
show bapp badges revoke maya@client.example tier:accelerate:1 --reason "awarded in error" --format tsv
refused bapp badges verify "$demo_dir/maya.jwt" --against-db --format tsv
show bapp badges status-list -o "$demo_dir/revocations.jwt"
bapp badges issuer show --jwk >"$demo_dir/issuer.jwk"
refused bapp badges verify "$demo_dir/maya.jwt" --key "$demo_dir/issuer.jwk" --status-list "$demo_dir/revocations.jwt" --format tsv
# ---- bookings that are real in Calendly (issue 13) ------------------------------------------------------
# Until now no token was set, so `bookings create` booked in bapp only. Here bapp talks to a fake Calendly
# served on a free local port (tests/fakes/serve_calendly.py, offline), holding the same event types the
# database synced above; with a token configured, a Calendly session type is booked in Calendly itself.
step "Serve a fake Calendly locally with the synced event types, and give bapp a token for it"
(cd "$root" && exec python -m tests.fakes.serve_calendly --event-types "$listing" --token demo-token) \
  > "$demo_dir/fake-calendly.url" 2> "$demo_dir/fake-calendly.log" &
fake_pid=$!
trap 'kill "$fake_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$demo_dir/fake-calendly.url" ] && break; sleep 0.1; done
export CALENDLY_API_BASE_URL="$(head -1 "$demo_dir/fake-calendly.url")" CALENDLY_API_KEY=demo-token
unset BAPP_BOOKINGS_CALENDLY
echo "    fake Calendly at $CALENDLY_API_BASE_URL"

step "Open slots, live from Calendly: one column per day, in the viewer's zone"
show bapp --timezone Europe/London sessions slots getting-started-free-intro --days 3 --format table
show bash -c "bapp sessions slots getting-started-free-intro --days 2 --format csv | head -3"

day_after="$(date -u -d '+2 days' +%Y-%m-%d)"
step "A start Calendly does not offer is refused before anything is written (exit 8, the nearest open starts)"
refused bapp bookings create --client lena@visitor.example --session getting-started-free-intro \
  --start "${day_after}T10:20:00Z" --answer "What brings you to BuildAppsWith?=Agents" \
  --answer "Which best describes you?=Founder"

step "Booked through Calendly: held as pending, sent with POST /invitees, confirmed with Calendly's event and invitee"
show bapp bookings create --client lena@visitor.example --name "Lena Park" --session getting-started-free-intro \
  --start "${day_after}T10:00:00Z" --answer "Which best describes you?=Founder" \
  --answer "What brings you to BuildAppsWith?=Agents" --json
lena_ref="$(bapp bookings list --client lena@visitor.example --format tsv | awk -F'\t' 'NR==2 {print $1}')"

step "The slot is taken: a second booking of it is refused (exit 8; here bapp's own overlap rule, before Calendly)"
refused bapp bookings create --client walk.in@visitor.example --session getting-started-free-intro \
  --start "${day_after}T10:00:00Z" --answer "What brings you to BuildAppsWith?=Agents" \
  --answer "Which best describes you?=Founder"

step "Nothing is waiting for Calendly's answer: reconcile (cron runs it) has nothing to settle"
show bapp calendly reconcile --json

step "Cancelling goes to Calendly first (it e-mails the client), then here"
show bapp bookings cancel "$lena_ref" --reason "Lena asked to move it" --format tsv

step "Or let the client pick the time: a single-use scheduling link, recorded until the booking arrives"
show bapp bookings link --client nina@client.example --session free-discovery-call --json
kill "$fake_pid" 2>/dev/null || true
unset CALENDLY_API_BASE_URL CALENDLY_API_KEY
