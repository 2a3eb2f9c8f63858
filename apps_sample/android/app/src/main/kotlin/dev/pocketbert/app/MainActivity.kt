package dev.pocketbert.app

import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.Button
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Surface
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.LaunchedEffect
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.rememberCoroutineScope
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.graphics.Color
import androidx.compose.ui.unit.dp
import dev.pocketbert.core.Engine
import dev.pocketbert.core.Latency
import dev.pocketbert.core.Result
import dev.pocketbert.core.Task
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/** One screen that adapts to the bundled manifest's task; all logic lives in `core` (Engine). */
class MainActivity : ComponentActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContent { MaterialTheme { Surface(Modifier.fillMaxSize()) { Screen() } } }
    }

    @Composable
    private fun Screen() {
        var engine by remember { mutableStateOf<Engine?>(null) }
        var header by remember { mutableStateOf("Loading the bundled model…") }
        var error by remember { mutableStateOf<String?>(null) }
        var task by remember { mutableStateOf<Task?>(null) }
        LaunchedEffect(Unit) {
            withContext(Dispatchers.Default) {
                try {
                    val bundle = AssetBundle(applicationContext)
                    val loaded = bundle.load()
                    header = "${bundle.manifest.origin}\n${bundle.artifact.name} · ${bundle.runtime.displayName} · ${bundle.manifest.task.id} · sha256 verified"
                    task = bundle.manifest.task
                    engine = loaded
                } catch (e: Exception) {
                    error = e.message ?: e.toString()
                    header = "No usable model"
                }
            }
        }
        Column(
            Modifier.fillMaxSize().padding(16.dp).verticalScroll(rememberScrollState()),
            verticalArrangement = Arrangement.spacedBy(12.dp),
        ) {
            Text("PocketBert", style = MaterialTheme.typography.headlineSmall)
            Text(header, style = MaterialTheme.typography.bodySmall)
            error?.let { Text(it, color = Color(0xFFB00020)) }
            val e = engine
            if (e != null) TaskPanel(e, task!!) { error = it }
        }
    }

    @Composable
    private fun TaskPanel(engine: Engine, task: Task, onError: (String?) -> Unit) {
        val scope = rememberCoroutineScope()
        var first by remember { mutableStateOf(defaultFirst(task)) }
        var second by remember { mutableStateOf(defaultSecond(task)) }
        var result by remember { mutableStateOf<Result?>(null) }
        val labels = when (task) {
            Task.FEATURE_EXTRACTION -> "First text" to "Second text"
            Task.QUESTION_ANSWERING -> "Question" to "Context"
            else -> "Text" to null
        }
        OutlinedTextField(first, { first = it }, Modifier.fillMaxWidth(), label = { Text(labels.first) })
        labels.second?.let { OutlinedTextField(second, { v -> second = v }, Modifier.fillMaxWidth(), label = { Text(it) }, minLines = 3) }
        Button(onClick = {
            scope.launch {
                try {
                    result = withContext(Dispatchers.Default) {
                        when (task) {
                            Task.SEQUENCE_CLASSIFICATION -> engine.classify(first)
                            Task.FEATURE_EXTRACTION -> engine.similarity(first, second)
                            Task.QUESTION_ANSWERING -> engine.answer(first, second)
                            Task.TOKEN_CLASSIFICATION -> engine.tag(first)
                        }
                    }
                    onError(null)
                } catch (e: Exception) {
                    onError(e.message ?: e.toString())
                }
            }
        }) { Text("Run") }
        result?.let { ResultView(it) }
    }

    @Composable
    private fun ResultView(result: Result) {
        when (result) {
            is Result.Classification -> result.scores.forEach { Text("${it.label}: ${"%.3f".format(it.probability)}") }
            is Result.Similarity -> Text("cosine similarity: ${"%.4f".format(result.cosine)}", style = MaterialTheme.typography.titleMedium)
            is Result.QuestionAnswer -> Text("answer: ${result.answer.text.ifEmpty { "(empty span)" }}", style = MaterialTheme.typography.titleMedium)
            is Result.Tagged -> result.words.forEach { Text("${it.text}  →  ${it.label} (${"%.2f".format(it.probability)})") }
        }
        LatencyView(result.latency)
    }

    @Composable
    private fun LatencyView(l: Latency) {
        Text(
            "tokenize ${"%.1f".format(l.tokenizeMs)} ms · run ${"%.1f".format(l.runMs)} ms · post-process ${"%.2f".format(l.postprocessMs)} ms · total ${"%.1f".format(l.totalMs)} ms",
            style = MaterialTheme.typography.bodySmall,
        )
    }

    private fun defaultFirst(task: Task) = when (task) {
        Task.FEATURE_EXTRACTION -> "A man is playing a guitar."
        Task.QUESTION_ANSWERING -> "Where is the Eiffel Tower?"
        Task.TOKEN_CLASSIFICATION -> "Barack Obama was born in Honolulu, Hawaii."
        Task.SEQUENCE_CLASSIFICATION -> "I absolutely loved this movie!"
    }

    private fun defaultSecond(task: Task) = when (task) {
        Task.FEATURE_EXTRACTION -> "Someone is playing an instrument on the street."
        Task.QUESTION_ANSWERING -> "The Eiffel Tower is located in Paris and was completed in 1889."
        else -> ""
    }
}
