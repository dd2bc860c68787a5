"""Errors a user can cause: the CLI turns them into one line on stderr and exit code 2."""


class UserError(Exception):
    """Bad input: a message naming the bad value and what would be accepted."""


def check_choice(name, value, accepted):
    """Raise UserError unless value is one of `accepted`, with a did-you-mean hint."""
    if value not in accepted:
        import difflib

        hint = difflib.get_close_matches(str(value), accepted, n=1)
        raise UserError(f"unknown {name} '{value}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                        + f"; accepted: {', '.join(accepted)}")


def announce(notify, message):
    """A change of network or weights, through notify; without one, a Python warning, so that a
    script user learns that vgg19 ran as VGG16 / hed."""
    if notify is not None:
        notify(message)
    else:
        import warnings

        warnings.warn(message, UserWarning, stacklevel=4)
