"""Settings for the whole project, read from the environment (and an optional `.env`).

Every variable is documented in `.env.example` and in the README. Development needs none of
them; production (DEBUG off) refuses to start without the ones it cannot guess.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)


def _required(name: str) -> str:
    value = env.str(name, default="")
    if not value:
        raise ImproperlyConfigured(
            f"The environment variable {name} is required when DEBUG is off "
            f"(see .env.example and the README)."
        )
    return value


def _development_secret_key(name: str = "dev-secret-key") -> str:
    """A random key kept in var/ so that it survives a restart of the dev server."""
    path = VAR_DIR / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        VAR_DIR.mkdir(exist_ok=True)
        key = secrets.token_urlsafe(50)
        path.write_text(key)
        path.chmod(0o600)
        return key


# Encrypts provider credentials at rest (calendars/crypto.py). Its own key, not SECRET_KEY, so
# that rotating SECRET_KEY loses nothing; CALENDAR_TOKEN_OLD_KEYS stay readable during a
# rotation (`python manage.py rotate_calendar_key`).
CALENDAR_TOKEN_OLD_KEYS = [
    key.strip() for key in env.list("CALENDAR_TOKEN_OLD_KEYS", default=[]) if key.strip()
]

if DEBUG:
    SECRET_KEY = env.str("SECRET_KEY", default="") or _development_secret_key()
    CALENDAR_TOKEN_KEY = env.str("CALENDAR_TOKEN_KEY", default="") or _development_secret_key(
        "dev-calendar-token-key"
    )
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
else:
    SECRET_KEY = _required("SECRET_KEY")
    CALENDAR_TOKEN_KEY = _required("CALENDAR_TOKEN_KEY")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
    if not ALLOWED_HOSTS:
        _required("ALLOWED_HOSTS")

CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The site's address as learners reach it: links written into exported calendar events, which
# background work writes without a request to take the host from.
SITE_URL = env.str(
    "SITE_URL",
    default="http://127.0.0.1:8000" if DEBUG else f"https://{ALLOWED_HOSTS[0].lstrip('.')}",
).rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "social_django",
    "ninja",  # serves the API docs' assets locally
    "axes",  # failed sign-ins and API tokens, and the locks they lead to (accounts/throttling.py)
    "accounts",
    "formations",
    "calendars",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "core.middleware.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.security.SecurityContextMiddleware",
    "accounts.middleware.PreferencesMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.middleware.SocialSignInErrorsMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "accounts.context_processors.sign_in_providers",
                "calendars.context_processors.calendar_alerts",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
# Production keeps connections open between requests (a new PostgreSQL connection per request
# halved the throughput of the calendar page and the API under load: benchmarks/README.md),
# checked before each request reuses one, so that a restarted database costs no failed request.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0 if DEBUG else 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked account or address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "accounts.backends.GoogleSignIn",
    "accounts.backends.MicrosoftSignIn",
    "django.contrib.auth.backends.ModelBackend",
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "formations:list"
LOGOUT_REDIRECT_URL = "login"

# Internationalization: French first, English second. The language comes from the learner's
# profile, then the language cookie, then LANGUAGE_CODE (see accounts.middleware).
LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", _("Français")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
# Stored datetimes are UTC; this is only the zone pages use for a visitor without a profile.
TIME_ZONE = env.str("TIME_ZONE", default="Europe/Paris")

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# E-mail (password reset), from one URL: consolemail:// prints messages (development),
# smtp+tls://user:password@host:587 sends them.
_email = env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25")
MAILERS = {
    "default": {
        "BACKEND": _email["EMAIL_BACKEND"],
        "OPTIONS": {
            "host": _email["EMAIL_HOST"],
            "port": _email["EMAIL_PORT"] or None,
            "username": _email["EMAIL_HOST_USER"] or None,
            "password": _email["EMAIL_HOST_PASSWORD"] or None,
            "use_tls": _email.get("EMAIL_USE_TLS", False),
            "use_ssl": _email.get("EMAIL_USE_SSL", False),
            "timeout": 10,
        }
        if _email["EMAIL_BACKEND"].endswith(".smtp.EmailBackend")
        else {},
    }
}
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="formations@localhost")

# --- Calendar providers -------------------------------------------------------------------
# Production defaults are the real services. CALENDAR_SANDBOX=true points every endpoint (and
# the client credentials, unless set) at the local emulator started by
# `python manage.py calendar_sandbox`; nothing else in the application knows about it. The
# sandbox's values (its ports here, its clients below) are written out rather than imported:
# the application never imports the sandbox, whose command registers the clients these
# settings end up with, so that the two cannot disagree.
CALENDAR_SANDBOX = env.bool("CALENDAR_SANDBOX", default=False)
CALENDAR_SANDBOX_URL = env.str("CALENDAR_SANDBOX_URL", default="http://127.0.0.1:8400").rstrip("/")
CALENDAR_SANDBOX_TLS_URL = env.str(
    "CALENDAR_SANDBOX_TLS_URL", default="https://127.0.0.1:8401"
).rstrip("/")
CALENDAR_SANDBOX_STATE_DIR = Path(
    env.str("CALENDAR_SANDBOX_STATE_DIR", default=str(VAR_DIR / "sandbox"))
)


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


# The sandbox's own app (for its command) is loaded only when the sandbox is in use: with
# CALENDAR_SANDBOX, or in development, where the package is there. A production install has no
# `sandbox` package (pyproject.toml leaves it out); pointed at a sandbox run elsewhere
# (CALENDAR_SANDBOX_URL), it starts without the app.
if (CALENDAR_SANDBOX or DEBUG) and _importable("sandbox"):
    INSTALLED_APPS.append("sandbox")


def _endpoint(name: str, real: str, sandbox: str) -> str:
    """The variable if set and not empty, else the sandbox's value or the real service's."""
    return env.str(name, default="") or (sandbox if CALENDAR_SANDBOX else real)


GOOGLE_AUTH_URI = _endpoint(
    "GOOGLE_AUTH_URI",
    "https://accounts.google.com/o/oauth2/v2/auth",
    f"{CALENDAR_SANDBOX_URL}/o/oauth2/v2/auth",
)
GOOGLE_TOKEN_URI = _endpoint(
    "GOOGLE_TOKEN_URI", "https://oauth2.googleapis.com/token", f"{CALENDAR_SANDBOX_URL}/token"
)
GOOGLE_REVOKE_URI = _endpoint(
    "GOOGLE_REVOKE_URI", "https://oauth2.googleapis.com/revoke", f"{CALENDAR_SANDBOX_URL}/revoke"
)
# The root under which calendar/v3/ and batch/calendar/v3 live.
GOOGLE_API_URL = _endpoint(
    "GOOGLE_API_URL", "https://www.googleapis.com/", f"{CALENDAR_SANDBOX_URL}/"
)
OUTLOOK_AUTHORITY = _endpoint(
    "OUTLOOK_AUTHORITY",
    "https://login.microsoftonline.com/common",
    f"{CALENDAR_SANDBOX_TLS_URL}/common",
).rstrip("/")
OUTLOOK_GRAPH_URL = _endpoint(
    "OUTLOOK_GRAPH_URL", "https://graph.microsoft.com/v1.0", f"{CALENDAR_SANDBOX_TLS_URL}/v1.0"
).rstrip("/")
# Import window (days before and after today) and retries of temporary provider failures.
CALENDAR_IMPORT_DAYS_BACK = env.int("CALENDAR_IMPORT_DAYS_BACK", default=30)
CALENDAR_IMPORT_DAYS_AHEAD = env.int("CALENDAR_IMPORT_DAYS_AHEAD", default=365)
# A calendar is listed again with today's window once it has slid this many days past the one
# its sync state continues (providers keep the first listing's window, or never go past it).
CALENDAR_WINDOW_SLIDE_DAYS = env.int("CALENDAR_WINDOW_SLIDE_DAYS", default=7)
CALENDAR_RETRY_ATTEMPTS = env.int("CALENDAR_RETRY_ATTEMPTS", default=5)
CALENDAR_RETRY_BASE = env.float("CALENDAR_RETRY_BASE", default=1.0)  # seconds, doubled each try
CALENDAR_RETRY_MAX_WAIT = env.float("CALENDAR_RETRY_MAX_WAIT", default=60.0)
# How long an export waits for another export of the same learner's calendar to finish.
CALENDAR_EXPORT_LOCK_WAIT = env.float("CALENDAR_EXPORT_LOCK_WAIT", default=30.0)
# Seconds before any single call to a provider gives up.
CALENDAR_HTTP_TIMEOUT = env.float("CALENDAR_HTTP_TIMEOUT", default=10.0)
# Background sync. Learners' calendars are synced every CALENDAR_SYNC_INTERVAL seconds (when
# their automatic sync is on) and, with push, within seconds of a change; a failed sync is
# tried again after a growing delay, up to CALENDAR_SYNC_RETRY_MAX seconds.
CALENDAR_SYNC_INTERVAL = env.int("CALENDAR_SYNC_INTERVAL", default=900)
CALENDAR_SYNC_RETRY_MAX = env.int("CALENDAR_SYNC_RETRY_MAX", default=6 * 3600)
CALENDAR_SYNC_HISTORY_DAYS = env.int("CALENDAR_SYNC_HISTORY_DAYS", default=30)
# When a provider refuses the application's own credentials (an expired client secret), its
# syncs are held; one is let through every CALENDAR_PROVIDER_FAULT_PROBE seconds to see
# whether it is fixed.
CALENDAR_PROVIDER_FAULT_PROBE = env.int("CALENDAR_PROVIDER_FAULT_PROBE", default=900)
# Push notifications: Google watch channels and Graph subscriptions call back
# CALENDAR_WEBHOOK_URL (default SITE_URL), which providers require in https (the sandbox also
# accepts plain http on loopback). Notifications arriving within CALENDAR_PUSH_DEBOUNCE seconds
# of each other make one sync. Channels live CALENDAR_PUSH_TTL seconds and are renewed
# CALENDAR_PUSH_RENEW_BEFORE seconds before they expire.
CALENDAR_PUSH_ENABLED = env.bool("CALENDAR_PUSH_ENABLED", default=True)
CALENDAR_WEBHOOK_URL = env.str("CALENDAR_WEBHOOK_URL", default=SITE_URL).rstrip("/")
CALENDAR_PUSH_DEBOUNCE = env.float("CALENDAR_PUSH_DEBOUNCE", default=2.0)
CALENDAR_PUSH_TTL = env.int("CALENDAR_PUSH_TTL", default=2 * 24 * 3600)
CALENDAR_PUSH_RENEW_BEFORE = env.int("CALENDAR_PUSH_RENEW_BEFORE", default=24 * 3600)
# How often (seconds) an open calendar page asks whether it should show something new.
CALENDAR_PAGE_REFRESH = env.float("CALENDAR_PAGE_REFRESH", default=5.0)

# Celery (config/celery.py). Without a broker, tasks run inline in the process that sends them,
# so development needs no other server. With Redis, tasks are acknowledged once done: a worker
# killed mid-task leaves its message to be delivered again (to another worker at once when
# only the pool process died; when the whole worker did, once CELERY_VISIBILITY_TIMEOUT seconds
# have passed, at the next sweep of unacknowledged messages: when a worker starts, then about
# every 100 s), and the sync it was running is idempotent.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fix-up closes the database connections before and after every task unless
# this is set (it then closes them every this many tasks): each task paid a new PostgreSQL
# connection, and a server process with cold caches, whatever CONN_MAX_AGE says. The workers
# treat their connections as Django treats a request's instead (config/celery.py).
CELERY_DB_REUSE_MAX = 2**31
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
}
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="calendar")
CELERY_BEAT_SCHEDULE = {
    "sync-due-integrations": {"task": "calendars.tasks.sync_due", "schedule": 60.0},
    "renew-push-channels": {"task": "calendars.tasks.renew_channels", "schedule": 3600.0},
    "prune-sync-history": {"task": "calendars.tasks.prune_history", "schedule": 24 * 3600.0},
    "prune-security-log": {"task": "accounts.tasks.prune_security_log", "schedule": 24 * 3600.0},
}
# An extra certificate authority to trust for Microsoft (a TLS-inspecting proxy, the sandbox).
OUTLOOK_CA_BUNDLE = _endpoint("OUTLOOK_CA_BUNDLE", "", str(CALENDAR_SANDBOX_STATE_DIR / "ca.pem"))

# CalDAV calendars (iCloud, Fastmail, Nextcloud...): offered unless turned off. The learner
# gives a server address, a username and an app-specific password; presets fill the address.
CALDAV_ENABLED = env.bool("CALDAV_ENABLED", default=True)
# A CalDAV server offered as a preset beside iCloud and Fastmail: `make run` starts a local
# Radicale with a demo account and sets it; empty in production.
CALDAV_DEMO_URL = env.str("CALDAV_DEMO_URL", default="")
# Its account, shown beside it on the settings page (a demo's, not a secret).
CALDAV_DEMO_USERNAME = env.str("CALDAV_DEMO_USERNAME", default="")
CALDAV_DEMO_PASSWORD = env.str("CALDAV_DEMO_PASSWORD", default="")

# Where providers send the learner back; by default /calendar/callback/<provider> on the host
# that started the flow. Set them when the site is reached through another name.
GOOGLE_REDIRECT_URI = env.str("GOOGLE_REDIRECT_URI", default="")
OUTLOOK_REDIRECT_URI = env.str("OUTLOOK_REDIRECT_URI", default="")
# oauthlib refuses plain-http redirect and token URLs; development runs over http on loopback.
if DEBUG:
    os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

# OAuth clients. The names are the ones the product already uses; they also enable "Sign in
# with Google / Microsoft". Signing in never stores a provider token (see the pipeline below,
# which leaves out social_core's load_extra_data step).
GOOGLE_CLIENT_ID = _endpoint("GOOGLE_CLIENT_ID", "", "sandbox-client.apps.googleusercontent.test")
GOOGLE_CLIENT_SECRET = _endpoint("GOOGLE_CLIENT_SECRET", "", "sandbox-google-client-secret")
OUTLOOK_CLIENT_ID = _endpoint("OUTLOOK_CLIENT_ID", "", "5a4d1b6e-0c1f-4f7e-9d2a-5a4d1b6e0c1f")
OUTLOOK_CLIENT_SECRET = _endpoint("OUTLOOK_CLIENT_SECRET", "", "sandbox-outlook-client-secret")
SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = GOOGLE_CLIENT_ID
SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET = GOOGLE_CLIENT_SECRET
SOCIAL_AUTH_MICROSOFT_GRAPH_KEY = OUTLOOK_CLIENT_ID
SOCIAL_AUTH_MICROSOFT_GRAPH_SECRET = OUTLOOK_CLIENT_SECRET
SOCIAL_AUTH_URL_NAMESPACE = "social"
SOCIAL_AUTH_JSONFIELD_ENABLED = True
SOCIAL_AUTH_REDIRECT_IS_HTTPS = not DEBUG
SOCIAL_AUTH_LOGIN_ERROR_URL = "/accounts/login/"
SOCIAL_AUTH_RAISE_EXCEPTIONS = False  # even with DEBUG on: the learner sees a message, not a trace
SOCIAL_AUTH_PIPELINE = (
    "social_core.pipeline.social_auth.social_details",
    "social_core.pipeline.social_auth.social_uid",
    "social_core.pipeline.social_auth.auth_allowed",
    "social_core.pipeline.social_auth.social_user",
    "social_core.pipeline.user.get_username",
    "accounts.pipeline.associate_by_verified_email",
    "social_core.pipeline.user.create_user",
    "social_core.pipeline.social_auth.associate_user",
    "accounts.pipeline.forget_provider_tokens",
    "social_core.pipeline.user.user_details",
)

# Security. With DEBUG off every check of `manage.py check --deploy` passes by default;
# SECURE_SSL_REDIRECT can be turned off where a proxy already redirects.
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None

# Guessing: after AXES_FAILURE_LIMIT failed sign-ins (or wrong API tokens) an account, and an
# address, are refused for SIGN_IN_LOCKOUT_MINUTES; a success clears the account's count.
AXES_FAILURE_LIMIT = env.int("SIGN_IN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("SIGN_IN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.throttling.locked_out"
# Before that, from this many failures on, each try waits twice as long as the last (1 s,
# 2 s, 4 s... at most a minute) after the previous failure (accounts.throttling).
SIGN_IN_SLOW_AFTER = env.int("SIGN_IN_SLOW_AFTER", default=3)
AXES_HANDLER = "accounts.throttling.SlowingHandler"
AXES_CLIENT_IP_CALLABLE = "accounts.throttling.client_ip"
AXES_USERNAME_FORM_FIELD = "username"
AXES_SENSITIVE_PARAMETERS = ["password", "token"]
AXES_VERBOSE = False  # its start-up banner in every process's log
# The security log (accounts.security): entries older than this are pruned daily.
SECURITY_LOG_RETENTION_DAYS = env.int("SECURITY_LOG_RETENTION_DAYS", default=365)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy, in development as in production so that a page breaking it is seen
# early. Scripts and style sheets come from the site's own files only: no inline script, no
# eval. Style attributes are allowed (the time grid places its bars with them; an attribute
# cannot run a script). No form-action: signing in and connecting a calendar redirect a form's
# POST to Google's or Microsoft's pages. Permissions-Policy: core.middleware.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "style-src-attr": [CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "{asctime} {levelname} {name}: {message}", "style": "{"},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "plain",
        },
    },
    "root": {"handlers": ["stdout"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # axes logs every sign-in's reset of failures at INFO; locks are WARNING.
        "axes": {"level": "WARNING"},
        # The security log's JSON lines (accounts.security), whatever LOG_LEVEL says.
        "security": {"level": "INFO"},
        # Client libraries log request bodies and token responses (codes, PKCE verifiers,
        # refresh tokens) at DEBUG: never below WARNING, whatever LOG_LEVEL says.
        **{
            name: {"level": "WARNING"}
            for name in (
                "requests_oauthlib",
                "oauthlib",
                "urllib3",
                "google.auth",
                "google_auth_httplib2",
                "googleapiclient",
                "httplib2",
            )
        },
        # msal logs a token response it cannot parse, tokens included, at ERROR.
        "msal": {"level": "CRITICAL"},
        # Tasks run inline (no broker) would log a line each; workers log them themselves.
        "celery.app.trace": {"level": "WARNING" if CELERY_TASK_ALWAYS_EAGER else "INFO"},
    },
}
