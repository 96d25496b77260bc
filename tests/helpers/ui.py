"""The web UI's actions: plain form posts without a token, as the original MiniTwit tests send them."""


def register(client, username, password, password2=None, email=None):
    """Register through the web form (the original MiniTwit helper)."""
    if password2 is None:
        password2 = password
    if email is None:
        email = username + "@example.com"
    data = {
        "username": username,
        "password": password,
        "password2": password2,
        "email": email,
    }
    return client.post("/register", data=data, follow_redirects=True)


def login(client, username, password):
    """Log in through the web form."""
    data = {
        "username": username,
        "password": password,
    }
    return client.post("/login", data=data, follow_redirects=True)


def register_and_login(client, username, password):
    """Register a user and log them in."""
    register(client, username, password)
    return login(client, username, password)


def logout(client):
    """Log the current user out."""
    return client.get("/logout", follow_redirects=True)


def add_message(client, text):
    """Post a message from My Timeline; check the flash when the text is not empty."""
    data = {"text": text}
    rv = client.post("/add_message", data=data, follow_redirects=True)
    if text:
        assert "Your message was recorded" in rv.get_data(as_text=True)
    return rv
