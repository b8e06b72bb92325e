"""Partial responses: Google's `fields` selector (a FieldMask with sub-selections), parsed and applied.

Grammar (api-notes 2.2):  list := item ("," item)* ;  item := path ["(" list ")"] ;  path := name ("/" name)*
with `*` as a name meaning "every field". Whitespace around commas is allowed. A selector names fields
of the response at hand: for files.list that is the FileList (`files(id)` is valid, `id` is not).
Unknown names give 400 "Invalid field selection X", like real Drive.
"""

from __future__ import annotations

from typing import Any

from driveferry.emulator.drive.errors import invalid_fields

# A parsed mask: name -> sub-mask, where None means the whole value.
Mask = dict[str, "Mask | None"]

FILE_FIELDS = frozenset("""
kind id name mimeType description starred trashed explicitlyTrashed trashedTime trashingUser parents properties
appProperties spaces version webContentLink webViewLink iconLink hasThumbnail thumbnailLink thumbnailVersion
viewedByMe viewedByMeTime createdTime modifiedTime modifiedByMeTime modifiedByMe sharedWithMeTime sharingUser
owners teamDriveId driveId lastModifyingUser shared ownedByMe capabilities viewersCanCopyContent
copyRequiresWriterPermission writersCanShare permissions permissionIds hasAugmentedPermissions folderColorRgb
originalFilename fullFileExtension fileExtension md5Checksum sha1Checksum sha256Checksum size quotaBytesUsed
headRevisionId contentHints imageMediaMetadata videoMediaMetadata isAppAuthorized exportLinks shortcutDetails
contentRestrictions resourceKey linkShareMetadata labelInfo inheritedPermissionsDisabled downloadRestrictions
""".split())

FILE_LIST_FIELDS = frozenset({"kind", "incompleteSearch", "nextPageToken", "files"})

ABOUT_FIELDS = frozenset("""
kind user storageQuota driveThemes canCreateDrives importFormats exportFormats appInstalled
maxImportSizes maxUploadSize folderColorPalette teamDriveThemes canCreateTeamDrives
""".split())

GENERATED_IDS_FIELDS = frozenset({"kind", "space", "ids"})

DEFAULT_FILE = "kind,id,name,mimeType"
DEFAULT_FILE_LIST = "kind,incompleteSearch,nextPageToken,files(kind,id,name,mimeType)"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self) -> Exception:
        return invalid_fields(self.text[self.pos:] or self.text)

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def name(self) -> str:
        self.skip_ws()
        start = self.pos
        while self.pos < len(self.text) and (self.text[self.pos].isalnum() or self.text[self.pos] in "_*.-"):
            self.pos += 1
        if start == self.pos:
            raise self.fail()
        return self.text[start:self.pos]

    def items(self, into: Mask) -> None:
        while True:
            path = [self.name()]
            while self.pos < len(self.text) and self.text[self.pos] == "/":
                self.pos += 1
                path.append(self.name())
            self.skip_ws()
            sub: Mask | None = None
            if self.pos < len(self.text) and self.text[self.pos] == "(":
                self.pos += 1
                sub = {}
                self.items(sub)
                self.skip_ws()
                if self.pos >= len(self.text) or self.text[self.pos] != ")":
                    raise self.fail()
                self.pos += 1
            _insert(into, path, sub)
            self.skip_ws()
            if self.pos < len(self.text) and self.text[self.pos] == ",":
                self.pos += 1
                continue
            return


def _insert(mask: Mask, path: list[str], sub: Mask | None) -> None:
    head, rest = path[0], path[1:]
    if not rest:
        current = mask.get(head, {})
        if sub is None or current is None:
            mask[head] = None  # the whole value wins over any sub-selection
        else:
            mask[head] = {**current, **sub}
        return
    child = mask.get(head, {})
    if child is None:  # already selecting the whole value
        return
    mask[head] = child
    _insert(child, rest, sub)


def parse(text: str) -> Mask:
    """Parse a selector; raises DriveError 400 on a syntax error."""
    p = _Parser(text)
    mask: Mask = {}
    p.items(mask)
    p.skip_ws()
    if p.pos != len(p.text):
        raise p.fail()
    return mask


def _check(mask: Mask, allowed: frozenset[str], nested: dict[str, frozenset[str]]) -> None:
    for name, sub in mask.items():
        if name != "*" and name not in allowed:
            raise invalid_fields(name)
        if sub is not None and name in nested:
            _check(sub, nested[name], {})


def file_mask(text: str | None) -> Mask:
    """The mask for a File response (get/create/update, final upload chunk)."""
    mask = parse(text if text and text.strip() else DEFAULT_FILE)
    _check(mask, FILE_FIELDS, {})
    return mask


def list_mask(text: str | None) -> Mask:
    """The mask for a FileList response; selectors inside `files(...)` are File fields."""
    mask = parse(text if text and text.strip() else DEFAULT_FILE_LIST)
    _check(mask, FILE_LIST_FIELDS, {"files": FILE_FIELDS})
    return mask


def about_mask(text: str) -> Mask:
    mask = parse(text)
    _check(mask, ABOUT_FIELDS, {})
    return mask


def ids_mask(text: str | None) -> Mask:
    mask = parse(text if text and text.strip() else "kind,space,ids")
    _check(mask, GENERATED_IDS_FIELDS, {})
    return mask


def apply(value: Any, mask: Mask | None) -> Any:
    """Keep only the selected parts of `value` (dicts filtered, lists filtered element-wise)."""
    if mask is None or "*" in mask and len(mask) == 1:
        return value
    if isinstance(value, list):
        return [apply(v, mask) for v in value]
    if not isinstance(value, dict):
        return value
    if "*" in mask:
        return {k: apply(v, mask.get(k)) if k in mask else v for k, v in value.items()}
    return {k: apply(value[k], sub) for k, sub in mask.items() if k in value}
