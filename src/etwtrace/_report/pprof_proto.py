"""The message classes of pprof's profile.proto, built at import time with PyPI's protobuf.

The schema is github.com/google/pprof/blob/main/proto/profile.proto (package
perftools.profiles, proto3), written out below as field tables. Building the classes from a
`FileDescriptorProto` rather than shipping protoc's generated ``profile_pb2.py`` keeps us
independent of the protobuf runtime version: a generated module only loads in the protobuf
releases that match the protoc that made it, while descriptors work with every release pip
installs on CPython 3.9-3.13 (tested from 3.20 to 7.x). The classes live in a private descriptor pool, so
another copy of profile.proto loaded by the application cannot clash with ours.

Importing this module raises ImportError when protobuf is not installed; `pprof.write` turns
that into a sentence saying what to install.
"""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "perftools.profiles"

_FIELD = descriptor_pb2.FieldDescriptorProto
_SCALAR_TYPES = {
    "int64": _FIELD.TYPE_INT64,
    "uint64": _FIELD.TYPE_UINT64,
    "bool": _FIELD.TYPE_BOOL,
    "string": _FIELD.TYPE_STRING,
}

# message -> [(field name, number, type, repeated)], as in profile.proto. A type that is not a
# scalar names another message of the file.
MESSAGES = {
    "Profile": [
        ("sample_type", 1, "ValueType", True),
        ("sample", 2, "Sample", True),
        ("mapping", 3, "Mapping", True),
        ("location", 4, "Location", True),
        ("function", 5, "Function", True),
        ("string_table", 6, "string", True),  # string_table[0] must be ""
        ("drop_frames", 7, "int64", False),
        ("keep_frames", 8, "int64", False),
        ("time_nanos", 9, "int64", False),
        ("duration_nanos", 10, "int64", False),
        ("period_type", 11, "ValueType", False),
        ("period", 12, "int64", False),
        ("comment", 13, "int64", True),
        ("default_sample_type", 14, "int64", False),
        ("doc_url", 15, "int64", False),
    ],
    "ValueType": [
        ("type", 1, "int64", False),
        ("unit", 2, "int64", False),
    ],
    "Sample": [
        ("location_id", 1, "uint64", True),  # leaf first
        ("value", 2, "int64", True),
        ("label", 3, "Label", True),
    ],
    "Label": [
        ("key", 1, "int64", False),
        ("str", 2, "int64", False),
        ("num", 3, "int64", False),
        ("num_unit", 4, "int64", False),
    ],
    "Mapping": [
        ("id", 1, "uint64", False),
        ("memory_start", 2, "uint64", False),
        ("memory_limit", 3, "uint64", False),
        ("file_offset", 4, "uint64", False),
        ("filename", 5, "int64", False),
        ("build_id", 6, "int64", False),
        ("has_functions", 7, "bool", False),
        ("has_filenames", 8, "bool", False),
        ("has_line_numbers", 9, "bool", False),
        ("has_inline_frames", 10, "bool", False),
    ],
    "Location": [
        ("id", 1, "uint64", False),
        ("mapping_id", 2, "uint64", False),
        ("address", 3, "uint64", False),
        ("line", 4, "Line", True),
        ("is_folded", 5, "bool", False),
    ],
    "Line": [
        ("function_id", 1, "uint64", False),
        ("line", 2, "int64", False),
        ("column", 3, "int64", False),
    ],
    "Function": [
        ("id", 1, "uint64", False),
        ("name", 2, "int64", False),
        ("system_name", 3, "int64", False),
        ("filename", 4, "int64", False),
        ("start_line", 5, "int64", False),
    ],
}


def file_descriptor():
    """profile.proto as a FileDescriptorProto."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="etwtrace/pprof/profile.proto", package=PACKAGE, syntax="proto3")
    for message_name, fields in MESSAGES.items():
        message = proto.message_type.add(name=message_name)
        for field_name, number, type_name, repeated in fields:
            field = message.field.add(
                name=field_name, number=number,
                label=_FIELD.LABEL_REPEATED if repeated else _FIELD.LABEL_OPTIONAL)
            if type_name in _SCALAR_TYPES:
                field.type = _SCALAR_TYPES[type_name]
            else:
                field.type = _FIELD.TYPE_MESSAGE
                field.type_name = f".{PACKAGE}.{type_name}"
    return proto


def _message_classes():
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(file_descriptor().SerializeToString())
    get_class = getattr(message_factory, "GetMessageClass", None)
    if get_class is None:  # protobuf 3.x and 4.21 (measured: 3.20.3, 4.21.12)
        get_class = message_factory.MessageFactory(pool).GetPrototype
    return {name: get_class(pool.FindMessageTypeByName(f"{PACKAGE}.{name}")) for name in MESSAGES}


_CLASSES = _message_classes()
Profile = _CLASSES["Profile"]
ValueType = _CLASSES["ValueType"]
Sample = _CLASSES["Sample"]
Label = _CLASSES["Label"]
Location = _CLASSES["Location"]
Line = _CLASSES["Line"]
Function = _CLASSES["Function"]
