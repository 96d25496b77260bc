"""The web pages: timelines, following and posting."""

from flask import Blueprint
from flask import abort
from flask import current_app
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from . import metrics
from . import models
from .auth import load_logged_in_user
from .extensions import db

bp = Blueprint("timeline", __name__)
FOLLOW_YOURSELF = "You cannot follow yourself"
bp.before_request(load_logged_in_user)


def render_timeline(query, **context):
    """Render a page of the newest messages selected by ``query``."""
    rows = db.session.execute(query.limit(current_app.config["PER_PAGE"])).all()
    return render_template("timeline.html", messages=rows, **context)


def user_id_or_404(username: str) -> int:
    """Look up a user's id, or answer 404."""
    user_id = models.get_user_id(username)
    if user_id is None:
        abort(404)
    return user_id


def require_login() -> None:
    """Answer 401 to anonymous visitors."""
    if not g.user:
        abort(401)


@bp.route("/")
def timeline():
    """Show the user's timeline, or send anonymous visitors to the public timeline."""
    if not g.user:
        return redirect(url_for("timeline.public_timeline"))
    return render_timeline(models.home_timeline_query(g.user.user_id))


@bp.route("/public")
def public_timeline():
    """Display the latest messages of all users."""
    return render_timeline(models.public_timeline_query())


@bp.route("/<username>")
def user_timeline(username):
    """Display a user's messages and whether the viewer follows them."""
    profile_user_id = user_id_or_404(username)
    followed = bool(g.user) and models.is_following(g.user.user_id, profile_user_id)
    return render_timeline(
        models.user_timeline_query(profile_user_id),
        profile_user={"user_id": profile_user_id, "username": username},
        followed=followed,
    )


@bp.route("/<username>/follow")
def follow_user(username):
    """Add the current user as follower of the given user."""
    require_login()
    whom_id = user_id_or_404(username)
    if whom_id == g.user.user_id:
        flash(FOLLOW_YOURSELF)
        return redirect(url_for("timeline.user_timeline", username=username))
    models.follow(g.user.user_id, whom_id)
    db.session.commit()
    metrics.FOLLOWS.labels(source="ui").inc()
    flash(f'You are now following "{username}"')
    return redirect(url_for("timeline.user_timeline", username=username))


@bp.route("/<username>/unfollow")
def unfollow_user(username):
    """Remove the current user as follower of the given user."""
    require_login()
    models.unfollow(g.user.user_id, user_id_or_404(username))
    db.session.commit()
    metrics.UNFOLLOWS.labels(source="ui").inc()
    flash(f'You are no longer following "{username}"')
    return redirect(url_for("timeline.user_timeline", username=username))


@bp.route("/add_message", methods=["POST"])
def add_message():
    """Register a new message for the user; an empty message does nothing."""
    require_login()
    text = request.form.get("text", "")
    limit = current_app.config["MAX_MESSAGE_LENGTH"]
    if len(text) > limit:
        flash(f"Your message is too long (at most {limit} characters); it was not recorded")
    elif not models.storable(text):
        flash("Your message contains characters that cannot be stored (NUL); it was not recorded")
    elif text.strip():
        models.add_message(g.user.user_id, text)
        db.session.commit()
        metrics.MESSAGES_POSTED.labels(source="ui").inc()
        flash("Your message was recorded")
    return redirect(url_for("timeline.timeline"))
