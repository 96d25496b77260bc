"""Sign up, sign in and sign out; password hashing and the registration rules the API shares."""

import hashlib
import hmac
import unicodedata

from flask import Blueprint
from flask import current_app
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash
from werkzeug.security import generate_password_hash

from . import metrics
from .extensions import db
from .models import User
from .models import get_user_id
from .models import storable

bp = Blueprint("auth", __name__)

USERNAME_TAKEN = "The username is already taken"
USERNAME_INVISIBLE = (
    "The username may not contain control or format characters "
    "(Unicode categories Cc and Cf, such as bidi overrides and zero-width characters)"
)
# Unicode categories that are invisible or reorder text: a name with them can impersonate another.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf"})


def load_logged_in_user() -> None:
    """Put the signed-in user (or None) on ``g`` for the HTML views."""
    user_id = session.get("user_id")
    g.user = db.session.get(User, user_id) if user_id is not None else None


bp.before_request(load_logged_in_user)


def hash_password(password: str) -> str:
    """Hash with Werkzeug's default method (scrypt)."""
    return generate_password_hash(password)


def verify_password(pw_hash: str, password: str) -> bool:
    """Check a password against a Werkzeug hash or a legacy bare MD5 hex digest."""
    if "$" in pw_hash:
        return check_password_hash(pw_hash, password)
    legacy = hashlib.md5(password.encode("utf-8")).hexdigest()  # only ever to verify old hashes
    return hmac.compare_digest(pw_hash.lower(), legacy)


def needs_rehash(pw_hash: str) -> bool:
    """Tell whether a stored hash predates the current default and should be upgraded."""
    return not pw_hash.startswith("scrypt:")


def has_invisible_characters(text: str) -> bool:
    """Tell whether ``text`` has a control or format character (bidi overrides, zero widths)."""
    return any(unicodedata.category(char) in INVISIBLE_CATEGORIES for char in text)


def local_path(target: str | None) -> str | None:
    """``target`` if it is a path on this site (never another host), else None."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def registration_error(username: str, email: str, password: str, password2: str | None = None) -> str | None:
    """Return the first failing registration check's message, in the contract's order, or None."""
    config = current_app.config
    if not all(storable(field or "") for field in (username, email, password, password2)):
        return "The form contains characters that cannot be stored (NUL or invalid Unicode)"
    if not username:
        return "You have to enter a username"
    if has_invisible_characters(username):
        return USERNAME_INVISIBLE
    if len(username) > config["MAX_USERNAME_LENGTH"]:
        return f"The username is too long (at most {config['MAX_USERNAME_LENGTH']} characters)"
    if not email or "@" not in email or len(email) > config["MAX_EMAIL_LENGTH"]:
        return "You have to enter a valid email address"
    if not password:
        return "You have to enter a password"
    if len(password) > config["MAX_PASSWORD_LENGTH"]:
        return f"The password is too long (at most {config['MAX_PASSWORD_LENGTH']} characters)"
    if password2 is not None and password != password2:
        return "The two passwords do not match"
    if get_user_id(username) is not None:
        return USERNAME_TAKEN
    return None


def create_user(username: str, email: str, password: str) -> str | None:
    """Store a new user; return an error message if the name was taken meanwhile."""
    db.session.add(User(username=username, email=email, pw_hash=hash_password(password)))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return USERNAME_TAKEN
    return None


@bp.route("/register", methods=["GET", "POST"])
def register():
    """Register a new user."""
    if g.user:
        return redirect(url_for("timeline.timeline"))
    error = None
    if request.method == "POST":
        form = request.form
        fields = [form.get(name, "") for name in ("username", "email", "password", "password2")]
        error = registration_error(*fields) or create_user(*fields[:3])
        if error is None:
            metrics.USERS_REGISTERED.labels(source="ui").inc()
            flash("You were successfully registered and can login now")
            return redirect(url_for("auth.login"))
    return render_template("register.html", error=error)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Log the user in."""
    if g.user:
        return redirect(url_for("timeline.timeline"))
    error = None
    if request.method == "POST":
        password = request.form.get("password", "")
        user_id = get_user_id(request.form.get("username", ""))
        user = db.session.get(User, user_id) if user_id is not None else None
        if user is None:
            error = "Invalid username"
        elif not verify_password(user.pw_hash, password):
            error = "Invalid password"
        else:
            if needs_rehash(user.pw_hash):
                user.pw_hash = hash_password(password)
                db.session.commit()
            session.clear()
            session["user_id"] = user.user_id
            flash("You were logged in")
            return redirect(local_path(request.args.get("next")) or url_for("timeline.timeline"))
    return render_template("login.html", error=error)


@bp.route("/logout")
def logout():
    """Log the user out."""
    flash("You were logged out")
    session.pop("user_id", None)
    return redirect(url_for("timeline.public_timeline"))
