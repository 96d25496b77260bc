"""Sign up, sign in and sign out (registration's rules: models.py; hashing: passwords.py; throttling: throttle.py)."""

from flask import Blueprint
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from sqlalchemy import update
from werkzeug.exceptions import ServiceUnavailable

from . import metrics
from . import throttle
from .extensions import db
from .models import User
from .models import get_user_id
from .models import register_user
from .passwords import hash_password
from .passwords import needs_rehash
from .passwords import verify_password

bp = Blueprint("auth", __name__)


def load_logged_in_user() -> None:
    """Put the signed-in user (or None) on ``g`` for the HTML views."""
    user_id = session.get("user_id")
    g.user = db.session.get(User, user_id) if user_id is not None else None


bp.before_request(load_logged_in_user)


def local_path(target: str | None) -> str | None:
    """``target`` if it is a path on this site (never another host), else None."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def upgrade_hash(user_id: int, old_hash: str, password: str) -> None:
    """Replace an old or weaker hash by a new one, hashed before the row is touched (no lock held)."""
    new_hash = hash_password(password)
    db.session.execute(update(User).where(User.user_id == user_id, User.pw_hash == old_hash).values(pw_hash=new_hash))
    db.session.commit()


@bp.route("/register", methods=["GET", "POST"])
def register():
    """Register a new user."""
    if g.user:
        return redirect(url_for("timeline.timeline"))
    error = None
    if request.method == "POST":
        form = request.form
        fields = [form.get(name, "") for name in ("username", "email", "password", "password2")]
        error = register_user(*fields)
        if error is None:
            metrics.USERS_REGISTERED.labels(source="ui").inc()
            flash("You were successfully registered and can login now")
            return redirect(url_for("auth.login"))
    return render_template("register.html", error=error)


def check_credentials(username: str, password: str) -> tuple[int | None, str | None]:
    """The user's id if ``password`` is theirs, else the error box's text; upgrades an old hash."""
    user_id = get_user_id(username)
    user = db.session.get(User, user_id) if user_id is not None else None
    pw_hash = user.pw_hash if user is not None else None
    db.session.commit()  # hand back the pooled connection: none is held while hashing
    if user is None:
        return None, "Invalid username"
    if not verify_password(pw_hash, password):
        return None, "Invalid password"
    if needs_rehash(pw_hash):
        upgrade_hash(user_id, pw_hash, password)
    return user_id, None


def refused(attempt: throttle.Attempt):
    """429: the sign-in form again, saying when to try again; the password was not checked."""
    page = render_template("login.html", error=attempt.message)
    return page, 429, {"Retry-After": str(attempt.retry_after)}


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Log the user in, unless the account's failed sign-ins fill its budget (throttle.py)."""
    if g.user:
        return redirect(url_for("timeline.timeline"))
    if request.method != "POST":
        return render_template("login.html", error=None)
    username = request.form.get("username", "")
    attempt = throttle.begin(username)
    if attempt.refused:
        return refused(attempt)
    try:
        user_id, error = check_credentials(username, request.form.get("password", ""))
    except ServiceUnavailable:  # no hashing slot freed up: the password was not checked after all
        throttle.give_back(attempt)
        raise
    if error:
        return render_template("login.html", error=error)  # the failure keeps its place in the budget
    throttle.give_back(attempt)
    session.clear()
    session["user_id"] = user_id
    flash("You were logged in")
    response = redirect(local_path(request.args.get("next")) or url_for("timeline.timeline"))
    throttle.trust_device(response, username)
    return response


@bp.route("/logout")
def logout():
    """Log the user out."""
    flash("You were logged out")
    session.pop("user_id", None)
    return redirect(url_for("timeline.public_timeline"))
