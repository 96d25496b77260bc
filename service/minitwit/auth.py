"""Sign up, sign in and sign out (registration's rules: models.py; hashing: passwords.py)."""

from flask import Blueprint
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from sqlalchemy import update

from . import metrics
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
        pw_hash = user.pw_hash if user is not None else None
        db.session.commit()  # hand back the pooled connection: none is held while hashing
        if user is None:
            error = "Invalid username"
        elif not verify_password(pw_hash, password):
            error = "Invalid password"
        else:
            if needs_rehash(pw_hash):
                upgrade_hash(user_id, pw_hash, password)
            session.clear()
            session["user_id"] = user_id
            flash("You were logged in")
            return redirect(local_path(request.args.get("next")) or url_for("timeline.timeline"))
    return render_template("login.html", error=error)


@bp.route("/logout")
def logout():
    """Log the user out."""
    flash("You were logged out")
    session.pop("user_id", None)
    return redirect(url_for("timeline.public_timeline"))
