"""The C++ header `kelly export` writes beside each network's JSON (`emotionrecognizer.h`).

For a real-time plugin, RTNeural's compile-time API: the network's exact `RTNeural::ModelT` type
(no heap allocation while running, sizes known to the compiler), loaded from the JSON with the
compile-time parser. Each header holds, in `namespace kelly::<network>` (`kelly::emotion_recognizer`):

- `Model`: the `ModelT` alias, each dense layer's activation as its own compile-time layer
  (`TanhActivationT`, `ReLuActivationT`, `SigmoidActivationT`, `SoftmaxActivationT`), the LSTM as
  `LSTMLayerT`, sizes from the exported file;
- `inputSize`, `outputSize`, `featureVersion`, `pitchReference`, the input slices (`...Offset`,
  `...Size`), the output range, `stepSeconds` and `stateCarries`, with the I/O contract in words
  (`export.plugin.io_contract`) in the comment above them;
- `bool load(Model&, std::istream&, std::string* error = nullptr)`: reads the JSON, checks every
  layer's type, size, activation and weight shapes against `Model` (RTNeural's compile-time
  parser checks none of this aloud: a mismatch leaves weights unset without a word), then loads
  it with `Model::parseJson`.

The headers share `kelly::rtneural_detail` (the checks), defined once under an include guard of
this format's version, so a plugin may include any of them together. RTNeural is included as the
plugin's build provides it (`RTNEURAL_DEFAULT_ALIGNMENT` and the backend set as RTNeural's CMake
target sets them); with the Eigen backend the header lifts Eigen's stack-allocation limit (the
layers are fixed-size matrices of up to 1 MiB) unless the build sets it, and silences GCC's
-Wuninitialized inside RTNeural's own Eigen layers, so that `-Wall -Werror` builds pass.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from export.plugin import io_contract

#: version of the generated header's layout and of `kelly::rtneural_detail`
HEADER_FORMAT = 1

COMPILE_TIME_ACTIVATIONS = {
    "tanh": "TanhActivationT",
    "relu": "ReLuActivationT",
    "sigmoid": "SigmoidActivationT",
    "softmax": "SoftmaxActivationT",
    "elu": "ELuActivationT",
}


def header_name(network_name: str) -> str:
    """The header's file name: "EmotionRecognizer" -> "emotionrecognizer.h" (beside its JSON)."""
    return f"{network_name.lower()}.h"


def namespace_name(network_name: str) -> str:
    """The C++ namespace inside `kelly`: "EmotionRecognizer" -> "emotion_recognizer"."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", network_name).lower()


def file_layers(document: dict) -> list[tuple[str, int, int, str]]:
    """(type, in, out, activation) of each layer of an RTNeural document that passed the
    structure check (`export.structure`)."""
    n_in = int(document["in_shape"][-1])
    layers = []
    for layer in document["layers"]:
        n_out = int(layer["shape"][-1])
        activation = "" if layer["type"] == "lstm" else (layer.get("activation") or "")
        layers.append((layer["type"], n_in, n_out, activation))
        n_in = n_out
    return layers


def model_type(layers: list[tuple[str, int, int, str]]) -> str:
    """The `RTNEURAL_NAMESPACE::ModelT<float, IN, OUT, ...>` type of these layers."""
    ns = "RTNEURAL_NAMESPACE"
    parts = []
    for kind, n_in, n_out, activation in layers:
        if kind == "dense":
            parts.append(f"{ns}::DenseT<float, {n_in}, {n_out}>")
        elif kind == "lstm":
            parts.append(f"{ns}::LSTMLayerT<float, {n_in}, {n_out}>")
        elif kind != "activation":
            raise ValueError(f"layer type {kind!r} has no compile-time type here")
        if activation:
            parts.append(f"{ns}::{COMPILE_TIME_ACTIVATIONS[activation]}<float, {n_out}>")
    joined = ",\n    ".join(parts)
    return f"{ns}::ModelT<float, {layers[0][1]}, {layers[-1][2]},\n    {joined}>"


def _comment(text: str, width: int = 100, indent: str = "") -> list[str]:
    """`text` as `// ` lines of at most `width` characters; lines after the first indented by `indent`."""
    lines, line = [], "//"
    for word in text.split():
        if len(line) + 1 + len(word) > width and line.strip("/ "):
            lines.append(line)
            line = "//" + indent
        line += " " + word
    return lines + [line]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _cxx_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=True)


def _cxx_float(value: float | None, unbounded: str) -> str:
    return unbounded if value is None else f"{float(value)!r}f"


DETAIL = r"""
#ifndef KELLY_RTNEURAL_DETAIL_FORMAT_1
#define KELLY_RTNEURAL_DETAIL_FORMAT_1
namespace kelly
{
namespace rtneural_detail
{
    /** One layer as the JSON holds it: type, input and output size, activation ("" for none). */
    struct Layer
    {
        const char* type;
        int inSize;
        int outSize;
        const char* activation;
    };

    inline bool fail(std::string* error, const std::string& reason)
    {
        if(error != nullptr)
            *error = reason;
        return false;
    }

    inline bool isFiniteFloat(const nlohmann::json& value)
    {
        return value.is_number() && std::isfinite(static_cast<float>(value.get<double>()));
    }

    /** "" when `value` is a [rows][cols] array of finite float32 numbers, else what is wrong. */
    inline std::string checkMatrix(const nlohmann::json& value, int rows, int cols)
    {
        if(!value.is_array() || static_cast<int>(value.size()) != rows)
            return "is not " + std::to_string(rows) + " rows";
        for(const auto& row : value)
        {
            if(!row.is_array() || static_cast<int>(row.size()) != cols)
                return "has a row that is not " + std::to_string(cols) + " values";
            for(const auto& number : row)
                if(!isFiniteFloat(number))
                    return "holds a value that is not a finite float32 number";
        }
        return {};
    }

    inline std::string checkVector(const nlohmann::json& value, int size)
    {
        if(!value.is_array() || static_cast<int>(value.size()) != size)
            return "is not " + std::to_string(size) + " values";
        for(const auto& number : value)
            if(!isFiniteFloat(number))
                return "holds a value that is not a finite float32 number";
        return {};
    }

    /** Checks `document` against the layers `Model` is built of; "" when it fits. */
    template <std::size_t N>
    std::string checkDocument(const nlohmann::json& document, int inSize, const Layer (&layers)[N])
    {
        if(!document.is_object() || !document.contains("in_shape") || !document.contains("layers"))
            return "the JSON has no in_shape and layers";
        const auto& shape = document.at("in_shape");
        if(!shape.is_array() || shape.empty() || !shape.back().is_number_integer() || shape.back().get<int>() != inSize)
            return "in_shape does not end in " + std::to_string(inSize);
        const auto& fileLayers = document.at("layers");
        if(!fileLayers.is_array() || fileLayers.size() != N)
            return "the JSON does not hold " + std::to_string(N) + " layers";
        for(std::size_t i = 0; i < N; ++i)
        {
            const auto& layer = fileLayers.at(i);
            const auto& expected = layers[i];
            const std::string where = "layer " + std::to_string(i) + " (" + expected.type + " " + std::to_string(expected.inSize) + "->" + std::to_string(expected.outSize) + "): ";
            if(!layer.is_object() || !layer.contains("type") || !layer.at("type").is_string() || layer.at("type").get<std::string>() != expected.type)
                return where + "the JSON layer is of another type";
            if(!layer.contains("shape") || !layer.at("shape").is_array() || layer.at("shape").empty() || !layer.at("shape").back().is_number_integer() || layer.at("shape").back().get<int>() != expected.outSize)
                return where + "the JSON layer has another output size";
            std::string activation;
            if(layer.contains("activation"))
            {
                if(!layer.at("activation").is_string())
                    return where + "its activation is not a string";
                activation = layer.at("activation").get<std::string>();
            }
            if(std::string(expected.type) == "dense" && activation != expected.activation)
                return where + "its activation is \"" + activation + "\", the model's \"" + expected.activation + "\"";
            if(!layer.contains("weights") || !layer.at("weights").is_array())
                return where + "it has no weights";
            const auto& weights = layer.at("weights");
            const int n = expected.outSize;
            std::string fault;
            if(std::string(expected.type) == "dense")
            {
                if(weights.size() != 2)
                    return where + "its weights are not [kernel, bias]";
                fault = checkMatrix(weights.at(0), expected.inSize, n);
                if(!fault.empty())
                    return where + "its kernel " + fault;
                fault = checkVector(weights.at(1), n);
                if(!fault.empty())
                    return where + "its bias " + fault;
            }
            else if(std::string(expected.type) == "lstm")
            {
                if(weights.size() != 3)
                    return where + "its weights are not [W, U, b]";
                fault = checkMatrix(weights.at(0), expected.inSize, 4 * n);
                if(!fault.empty())
                    return where + "its kernel W " + fault;
                fault = checkMatrix(weights.at(1), n, 4 * n);
                if(!fault.empty())
                    return where + "its recurrent kernel U " + fault;
                fault = checkVector(weights.at(2), 4 * n);
                if(!fault.empty())
                    return where + "its bias " + fault;
            }
        }
        return {};
    }

    /** Reads the JSON from `stream`, checks it against `layers` and loads it into `model`. */
    template <typename Model, std::size_t N>
    bool load(Model& model, std::istream& stream, int inSize, const Layer (&layers)[N], std::string* error)
    {
        try
        {
            const auto document = nlohmann::json::parse(stream);
            const auto fault = checkDocument(document, inSize, layers);
            if(!fault.empty())
                return fail(error, fault);
            model.parseJson(document);
            model.reset();
            return true;
        }
        catch(const std::exception& e)
        {
            return fail(error, std::string("cannot read the JSON: ") + e.what());
        }
    }
} // namespace rtneural_detail
} // namespace kelly
#endif // KELLY_RTNEURAL_DETAIL_FORMAT_1
"""


def header_text(document: dict, json_name: str) -> str:
    """The header for one exported document (with its `metadata` block); `json_name` is the JSON
    file it loads (named in the comments)."""
    metadata = document["metadata"]
    network = metadata["network"]
    key = metadata["key"]
    layers = file_layers(document)
    contract = io_contract(key)
    namespace = namespace_name(network)
    features = metadata.get("features", {}).get("version")
    pitch = metadata.get("pitch_reference", contract["pitch_reference"])
    outputs = contract["outputs"]
    seconds = contract["step_seconds"]

    lines = [
        f"// {header_name(network)}: {network} for RTNeural's compile-time API.",
        f"// Written by `kelly export` with {json_name}; regenerate both together, never edit by hand.",
        "//",
        f"// Inputs ({contract['input_size']} floats, raw: the standardisation is folded into layer 0):",
        *(line for part in contract["inputs"] for line in _comment(
            f"[{part['offset']}, {part['offset'] + part['size']}) {part['name']}: {part['meaning']}", indent="    ")),
        *_comment(f"Outputs ({contract['output_size']} floats): {outputs['meaning']} ({outputs['scale']})."),
        *_comment(f"Step: {contract['step']}. State: {contract['state']}."),
        *_comment(f"Pitch reference: {pitch}"
                  + (f" ({metadata['pitch_reference_rule']})" if metadata.get("pitch_reference_rule") else "") + "."),
        "//",
        *_comment("Use: allocate the Model once, off the audio thread (it holds the weights: keep it on the heap); "
                  "load it with load(); then per step fill an input array aligned to RTNEURAL_DEFAULT_ALIGNMENT, "
                  "call forward(input) and read getOutputs(). forward() does not allocate."),
        "#pragma once",
        "",
        "#if RTNEURAL_USE_EIGEN && !defined(EIGEN_STACK_ALLOCATION_LIMIT)",
        "#define EIGEN_STACK_ALLOCATION_LIMIT 0 // the layers are fixed-size Eigen matrices larger than 128 KiB",
        "#endif",
        "#if defined(__GNUC__)",
        "#pragma GCC diagnostic push",
        "#pragma GCC diagnostic ignored \"-Wuninitialized\" // RTNeural's Eigen layers map a member before it is set",
        "#endif",
        "#include <RTNeural/RTNeural.h>",
        "#if defined(__GNUC__)",
        "#pragma GCC diagnostic pop",
        "#endif",
        "",
        "#include <cmath>",
        "#include <cstddef>",
        "#include <istream>",
        "#include <string>",
        "",
        "#ifndef RTNEURAL_NAMESPACE",
        "#define RTNEURAL_NAMESPACE RTNeural",
        "#endif",
        DETAIL.strip("\n"),
        "",
        "namespace kelly",
        "{",
        f"namespace {namespace}",
        "{",
        f"    /** {network}: {', '.join(f'{k} {i}->{o}' + (f' ({a})' if a else '') for k, i, o, a in layers)}. */",
        "    using Model = " + model_type(layers).replace("\n", "\n    ") + ";",
        "",
        f"    inline constexpr int inputSize = {contract['input_size']};",
        f"    inline constexpr int outputSize = {contract['output_size']};",
        f"    inline constexpr const char* featureVersion = {_cxx_string(str(features))};",
        f"    inline constexpr const char* pitchReference = {_cxx_string(str(pitch))};",
    ]
    for part in contract["inputs"]:
        name = _camel(part["name"])
        lines += [f"    inline constexpr int {name}Offset = {part['offset']};",
                  f"    inline constexpr int {name}Size = {part['size']};"]
    lines += [
        f"    inline constexpr float outputMin = {_cxx_float(outputs['min'], '-HUGE_VALF')};",
        f"    inline constexpr float outputMax = {_cxx_float(outputs['max'], 'HUGE_VALF')};",
        f"    /** seconds of music per forward() call; 0 when a step is {'a musical unit' if seconds is None else 'timed'} ({contract['step']}) */",
        f"    inline constexpr double stepSeconds = {0.0 if seconds is None else float(seconds)!r};",
        f"    /** {'true: call reset() at the start of each piece, never between steps' if contract['state_carries'] else 'false: each forward() is independent'} */",
        f"    inline constexpr bool stateCarries = {'true' if contract['state_carries'] else 'false'};",
        "",
        f"    /** Loads {json_name} into `model`; false (with the reason in `error`) when the JSON is not this network. */",
        "    inline bool load(Model& model, std::istream& json, std::string* error = nullptr)",
        "    {",
        "        static constexpr rtneural_detail::Layer layers[] = {",
        *[f"            {{ \"{k}\", {i}, {o}, \"{a}\" }}," for k, i, o, a in layers],
        "        };",
        "        return rtneural_detail::load(model, json, inputSize, layers, error);",
        "    }",
        f"}} // namespace {namespace}",
        "} // namespace kelly",
        "",
    ]
    return "\n".join(lines)


def write_header(document: dict, json_path: str | Path) -> Path:
    """Write the header beside `json_path` (atomically); returns its path."""
    from common.files import write_text

    json_path = Path(json_path)
    path = json_path.with_name(header_name(document["metadata"]["network"]))
    return write_text(path, header_text(document, json_path.name))
